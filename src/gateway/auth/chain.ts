/** Runs authenticators in order; the first answer other than ignore wins. An empty or all-ignore chain denies. */
import { RC } from '../../mqtt/reason-codes.ts';
import type { Authenticator, Credential, Decision } from './authenticator.ts';

export interface ChainStats {
  allowed: number;
  denied: number;
  unavailable: number;
}

export class AuthChain {
  readonly #providers: readonly Authenticator[];
  readonly stats: ChainStats = { allowed: 0, denied: 0, unavailable: 0 };

  constructor(providers: readonly Authenticator[]) {
    this.#providers = providers;
  }

  async authenticate(credential: Credential): Promise<Decision> {
    for (const provider of this.#providers) {
      let decision: Decision;
      try {
        decision = await provider.authenticate(credential);
      } catch (err) {
        decision = { kind: 'unavailable', reason: `${provider.id}: ${err instanceof Error ? err.message : String(err)}` };
      }
      if (decision.kind === 'ignore') continue;
      if (decision.kind === 'allow') this.stats.allowed++;
      else if (decision.kind === 'deny') this.stats.denied++;
      else this.stats.unavailable++;
      return decision;
    }
    this.stats.denied++;
    return { kind: 'deny', reasonCode: RC.NOT_AUTHORIZED, reason: 'no_authenticator_accepted' };
  }
}
