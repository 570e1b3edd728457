// Writes deploy/ from charts/netmon: deploy/netmon.yaml (every object of the chart's defaults, release
// netmon in namespace netmon, that Namespace first) and deploy/grafana-dashboard.json.
//   node test/chart/render-deploy.mjs           rewrite deploy/
//   node test/chart/render-deploy.mjs --check   exit 1 when deploy/ differs from a fresh render
// Needs Go and Debian's sprig (scripts/bootstrap.sh installs them); test/chart checks deploy/ is current.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { deployFiles, ROOT } from '../harness/helm-render/render.mjs';

const check = process.argv.includes('--check');
let stale = 0;
for (const [file, content] of Object.entries(await deployFiles())) {
  const target = path.join(ROOT, file);
  const current = await readFile(target, 'utf8').catch(() => undefined);
  if (current === content) continue;
  if (check) {
    console.error(`${file} is not what the chart renders: run node test/chart/render-deploy.mjs`);
    stale++;
  } else {
    await writeFile(target, content);
    console.log(`wrote ${file}`);
  }
}
process.exitCode = stale > 0 ? 1 : 0;
