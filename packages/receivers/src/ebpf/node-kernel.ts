// The real node access of the eBPF receiver: the addon (loaded with the receiver, never at validate
// time) and the node's files.
import { existsSync, readFileSync } from 'node:fs';
import { attachCgroupFlows } from '@netmon/native';
import type { EbpfKernel } from './kernel.js';

export const nodeKernel: EbpfKernel = {
  attach: attachCgroupFlows,
  readProc(path) {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return undefined;
    }
  },
  exists: existsSync,
  // Virtual network devices sit under /sys/devices/virtual/net; physical ones (and the VM's virtio
  // ones) do not. Pod traffic crosses a veth and then the physical interface, so counting both would
  // count it twice.
  isVirtualInterface: (name) => name === 'lo' || existsSync(`/sys/devices/virtual/net/${name}`),
};
