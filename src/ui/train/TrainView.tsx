/** The Train screen (being built: see issue 6). */
export function TrainView() {
  return <section data-testid="train-view">Train</section>;
}
