// A plugin whose top-level await never settles: loading it never finishes.
await new Promise(() => {});
export default (batch) => batch;
