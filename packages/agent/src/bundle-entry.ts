// The bundled agent's entry point (dist/bundle/netmon.js, built by tools/bundle.ts): tells the plugin loader
// where the bundle's own @netmon/core is, then runs the CLI.
import { setBundledCore } from '@netmon/core';

// 'core.js', not './core.js': the bundle tool relocates module-relative './…' URLs that name files.
setBundledCore(new URL('core.js', import.meta.url).href);
await import('./cli.js');
