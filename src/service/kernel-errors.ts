/** Backend failures in API terms: which errno means what for the person who sent the change. */
import { CarpdError } from '../errors.js';
import { KernelError } from '../kernel/errno.js';

/**
 * `read` is for requests that change nothing (statistics): their messages must not speak of a
 * change being undone, nor of privileges needed to change things.
 */
export function fromKernelError(e: KernelError, kind: 'change' | 'read' = 'change'): CarpdError {
  const kernel = { operation: e.operation, interface: e.iface, errno: e.errno, errnoName: e.errnoName };
  const where = e.iface ? ` on ${e.iface}` : '';
  switch (e.errnoName) {
    case 'ENXIO':
      return new CarpdError('CARPD_ERR_INTERFACE_NOT_FOUND', `${e.operation}: interface ${e.iface ?? ''} does not exist on this node; check the name (ifconfig -l)`, { kernel });
    case 'EOPNOTSUPP':
      return new CarpdError('CARPD_ERR_UNSUPPORTED', `${e.operation}${where}: not supported by the kernel (${e.message})`, { kernel });
    case 'EPERM':
      return new CarpdError('CARPD_ERR_KERNEL', `${e.operation}${where}: permission denied (EPERM); carpd must run as root to ${kind === 'read' ? 'read' : 'change'} CARP and pfsync`, { kernel });
    case 'EPROTONOSUPPORT':
      return new CarpdError('CARPD_ERR_KERNEL', `${e.operation}${where}: carp(4) is not loaded (EPROTONOSUPPORT); run kldload carp or add carp_load="YES" to /boot/loader.conf`, { kernel });
    case 'ENOPROTOOPT':
      return new CarpdError('CARPD_ERR_KERNEL', `${e.operation}${where}: the address reached the interface before its vhid (ENOPROTOOPT); the change was undone`, { kernel });
    default:
      return new CarpdError('CARPD_ERR_KERNEL', kind === 'read' ? e.message : `${e.message}; the change was undone`, { kernel });
  }
}
