/** A message that may run to many lines (a loader naming every bad tensor): the start, and the rest on request. */
export function LongMessage({ text, limit = 220 }: { text: string; limit?: number }) {
  if (text.length <= limit) return <>{text}</>;
  return (
    <details className="long-message">
      <summary>{text.slice(0, limit).trimEnd()}… (show all)</summary>
      <div className="long-message-rest">{text}</div>
    </details>
  );
}
