// Test plugin: holds each batch for `delay_ms`, so batches pile up in the receiver queue.
export default {
  async process(batch, ctx) {
    await new Promise((r) => setTimeout(r, ctx.options.delay_ms ?? 50));
    return batch;
  },
};
