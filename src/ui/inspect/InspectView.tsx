/** The Inspect screen (being built: see issue 6). */
export function InspectView() {
  return <section data-testid="inspect-view">Inspect</section>;
}
