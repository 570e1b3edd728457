// A plugin that keeps TCP flows only: it leaves the others out of the batch it returns, by design.
export default (batch) => {
  const rows = [];
  for (let i = 0; i < batch.length; i++) if (batch.protocol[i] === 6) rows.push(i);
  return batch.select(rows);
};
