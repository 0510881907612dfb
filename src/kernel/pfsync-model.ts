/**
 * pfsync kept in memory, with the kernel's validation (maxupd 0..255, a known version, a
 * syncdev that exists): the memory and sim backends configure no real pfsync0.
 */
import type { PfsyncLive, PfsyncSettings } from './backend.js';
import { pfsyncParamsFault } from '../wire/limits.js';
import { KernelError } from './errno.js';

export class PfsyncModel {
  private settings: PfsyncSettings = { maxupd: 128, defer: false, version: 1400 };

  /** `interfaces`: the names that exist; any name when undefined. */
  constructor(private readonly interfaces?: ReadonlySet<string>) {}

  get(): PfsyncLive {
    const running = this.settings.syncdev !== undefined;
    // With no peer to sync from, the bulk update is done as soon as pfsync runs.
    return { ...this.settings, running, bulkUpdateDone: running };
  }

  set(s: PfsyncSettings): void {
    const op = 'configure pfsync0';
    const fault = pfsyncParamsFault(s);
    if (fault) throw KernelError.of('EINVAL', op, 'pfsync0', fault);
    if (s.syncdev !== undefined && this.interfaces && !this.interfaces.has(s.syncdev)) throw KernelError.of('EINVAL', op, 'pfsync0', `syncdev ${s.syncdev} does not exist`);
    this.settings = { ...s };
  }
}
