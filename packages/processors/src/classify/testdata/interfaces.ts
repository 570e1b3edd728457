// Stand-ins for os.networkInterfaces(): what HostAddresses reads for "this host's" addresses in tests.
import type os from 'node:os';

/** One interface's entries, as os.networkInterfaces() gives them, for these addresses. */
export function iface(...addresses: string[]): os.NetworkInterfaceInfo[] {
  return addresses.map(
    (address) =>
      ({
        address,
        family: address.includes(':') ? 'IPv6' : 'IPv4',
        netmask: address.includes(':') ? 'ffff:ffff:ffff:ffff::' : '255.255.255.0',
        mac: '02:00:00:00:00:01',
        internal: false,
        cidr: null,
        scopeid: 0,
      }) as os.NetworkInterfaceInfo,
  );
}

/** An interface source with these addresses on eth0. */
export const eth0 =
  (...addresses: string[]) =>
  (): NodeJS.Dict<os.NetworkInterfaceInfo[]> => ({ eth0: iface(...addresses) });
