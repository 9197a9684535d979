/** The Scans screen (being built: see issue 6). */
export function ScansView() {
  return <section data-testid="scans-view">Scans</section>;
}
