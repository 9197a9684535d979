/** The Models screen (being built: see issue 6). */
export function ModelsView() {
  return <section data-testid="models-view">Models</section>;
}
