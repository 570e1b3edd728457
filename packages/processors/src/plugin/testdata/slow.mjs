// A plugin whose top-level code takes a minute to finish loading (a timer holds the process meanwhile).
await new Promise((resolve) => setTimeout(resolve, 60_000));
export default (batch) => batch;
