// A plugin that hands every batch on unchanged.
export default (batch) => batch;
