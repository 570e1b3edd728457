import { UNSEAL } from './unseal.js';

/** What a batch's column asks before a write: the batch may have been sealed since it made the column. */
export interface SealState {
  readonly readonly: boolean;
}

/** Throws when `batch` is sealed: the first step of every write to a batch or to one of its columns. */
export function refuseIfSealed(batch: SealState): void {
  if (batch.readonly) {
    throw new Error(
      `${batch.constructor.name} is read-only: a processor that changes batches must declare \`mutates: true\``,
    );
  }
}

/**
 * The read-only mark every batch class carries. A batch handed to several consumers, or to a stage that
 * did not declare `mutates`, is sealed; its writing methods then throw instead of changing what others
 * read.
 */
export abstract class Sealable implements SealState {
  private sealed = false;

  get readonly(): boolean {
    return this.sealed;
  }

  /** Marks the batch read-only; the mutating methods throw from now on. */
  seal(): this {
    this.sealed = true;
    return this;
  }

  /** Lifts a seal: only for the pipeline that owns the batch and sealed it for one read-only call. */
  [UNSEAL](): void {
    this.sealed = false;
  }

  protected assertWritable(): void {
    refuseIfSealed(this);
  }
}
