import { readFileSync, writeSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { defaultBenchOptions, runBench } from '../bench/suite.ts';
import { createNodeRuntime } from '../gpu/node.ts';
import { evalUsage, evaluate } from './evaluate.ts';
import { train, trainUsage } from './train.ts';

/**
 * `mambaad <command>`: the engine in Node on Dawn (the `webgpu` package), for GPU servers.
 * Output is written with writeSync: Dawn may abort during teardown, which would drop buffered stdout.
 */
const usage =
  'usage: mambaad bench [--matmul 1024,4096] [--weights FILE --batches 1,16] [--train-batches 16] [--pixel-images 2000] [--encoder RESNET18_FILE]';

function print(line: string): void {
  writeSync(1, `${line}\n`);
}

async function bench(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      matmul: { type: 'string' },
      weights: { type: 'string' },
      batches: { type: 'string' },
      'train-batches': { type: 'string' },
      'pixel-images': { type: 'string' },
      encoder: { type: 'string' },
    },
  });
  const list = (value: string | undefined, fallback: number[]) => (value ? value.split(',').map(Number) : fallback);
  const runtime = await createNodeRuntime();
  try {
    const record = await runBench(runtime, {
      ...defaultBenchOptions,
      matmulSizes: list(values.matmul, defaultBenchOptions.matmulSizes),
      forwardBatches: list(values.batches, defaultBenchOptions.forwardBatches),
      trainingBatches: list(values['train-batches'], defaultBenchOptions.trainingBatches),
      pixelMetricsImages: Number(values['pixel-images'] ?? defaultBenchOptions.pixelMetricsImages),
      ...(values.weights ? { weights: new Uint8Array(readFileSync(values.weights)) } : {}),
      ...(values.encoder ? { encoderWeights: new Uint8Array(readFileSync(values.encoder)) } : {}),
    });
    print(JSON.stringify({ host: 'node-dawn', ...record }));
  } finally {
    runtime.destroy();
  }
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'bench':
      await bench(rest);
      return 0;
    case 'train':
      print(await train(rest));
      return 0;
    case 'eval':
      print(await evaluate(rest));
      return 0;
    default:
      process.stderr.write(`${usage}\n${trainUsage}\n${evalUsage}\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: Error) => {
    writeSync(2, `mambaad: ${error.message}\n`);
    process.exit(1);
  },
);
