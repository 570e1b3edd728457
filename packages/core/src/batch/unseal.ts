// The key of the batches' unseal method, in a module of its own that the package index does not export:
// a plugin handed a sealed batch must not lift the seal; only the pipeline that owns the batch may.
export const UNSEAL: unique symbol = Symbol('netmon.unseal');
