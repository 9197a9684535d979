/** The Evaluate screen (being built: see issue 6). */
export function EvaluateView() {
  return <section data-testid="evaluate-view">Evaluate</section>;
}
