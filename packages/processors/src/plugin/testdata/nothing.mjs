// A plugin that returns nothing: every batch it gets is dropped.
export default () => undefined;
