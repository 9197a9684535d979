/** Pages driven by scripts/browserPage.ts report through window.pageResult. */
declare global {
  interface Window {
    pageResult?: { ok: true; record: unknown } | { ok: false; error: string };
  }
}

export function reportPageResult(work: Promise<unknown>): void {
  const output = document.getElementById('result');
  work.then(
    (record) => {
      window.pageResult = { ok: true, record };
      if (output) output.textContent = JSON.stringify(record, null, 2);
    },
    (error: Error) => {
      window.pageResult = { ok: false, error: `${error.name}: ${error.message}` };
      if (output) output.textContent = String(error.stack ?? error);
    },
  );
}
