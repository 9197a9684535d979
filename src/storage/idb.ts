/**
 * The studio's one IndexedDB database: `models` (the local model library) and `checkpoints` (training runs that can
 * resume after a reload). A small promise wrapper, so callers read as plain async code.
 */
const DB_NAME = 'mambaad-studio';
const DB_VERSION = 1;
export const STORES = ['models', 'checkpoints'] as const;
export type StoreName = (typeof STORES)[number];

let opening: Promise<IDBDatabase> | undefined;

function request<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error ?? new Error('IndexedDB request failed'));
  });
}

export function openStudioDatabase(): Promise<IDBDatabase> {
  opening ??= new Promise<IDBDatabase>((resolve, reject) => {
    if (typeof indexedDB === 'undefined') {
      reject(new Error('this browser has no IndexedDB, so models and checkpoints cannot be kept between visits'));
      return;
    }
    const open = indexedDB.open(DB_NAME, DB_VERSION);
    open.onupgradeneeded = () => {
      for (const name of STORES) if (!open.result.objectStoreNames.contains(name)) open.result.createObjectStore(name);
    };
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error ?? new Error('IndexedDB could not be opened'));
    open.onblocked = () => reject(new Error('IndexedDB is blocked by another tab of the studio; close it and retry'));
  });
  opening.catch(() => {
    opening = undefined;
  });
  return opening;
}

async function transaction<T>(
  store: StoreName,
  mode: IDBTransactionMode,
  action: (s: IDBObjectStore) => IDBRequest<T>,
): Promise<T> {
  const db = await openStudioDatabase();
  const tx = db.transaction(store, mode);
  const result = request(action(tx.objectStore(store)));
  // A write is durable only once its transaction completes, not when its request succeeds.
  await new Promise<void>((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error ?? new Error('IndexedDB transaction failed'));
    tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted (storage full?)'));
  });
  return result;
}

export function idbGet<T>(store: StoreName, key: string): Promise<T | undefined> {
  return transaction(store, 'readonly', (s) => s.get(key) as IDBRequest<T | undefined>);
}

export async function idbPut(store: StoreName, key: string, value: unknown): Promise<void> {
  await transaction(store, 'readwrite', (s) => s.put(value, key));
}

export async function idbDelete(store: StoreName, key: string): Promise<void> {
  await transaction(store, 'readwrite', (s) => s.delete(key));
}

/** Several puts and deletes in one transaction: after a crash either all of them are stored or none is. */
export async function idbWriteAll(
  store: StoreName,
  writes: { put?: ReadonlyArray<readonly [string, unknown]>; delete?: readonly string[] },
): Promise<void> {
  await transaction(store, 'readwrite', (s) => {
    for (const key of writes.delete ?? []) s.delete(key);
    for (const [key, value] of writes.put ?? []) s.put(value, key);
    // transaction() waits for the whole transaction to complete, not just this request.
    return s.count();
  });
}

export async function idbKeys(store: StoreName): Promise<string[]> {
  const keys = await transaction(store, 'readonly', (s) => s.getAllKeys());
  return keys.map(String);
}
