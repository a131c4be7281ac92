/**
 * Third-party verification by a stored function, run in the sandbox. The function is compiled once
 * (shared by every gateway that names it, see function-scripts.ts) and called per CONNECT with
 * `{userName, password, clientId, certificateCommonName}`. A function that loops, throws, exhausts its
 * memory or answers something that is not a verification result is a backend failure: counted, and
 * the device hears "server unavailable", never an accept.
 */
import { RC } from '../../../mqtt/reason-codes.ts';
import { interpretVerificationOutput } from '../../../registry/index.ts';
import type { Authenticator, Credential, Decision } from '../authenticator.ts';
import { countFailure, newStats, peerCertificate, type ThirdPartyStats } from '../third-party.ts';
import type { FunctionScripts } from './function-scripts.ts';

export class FunctionAuthenticator implements Authenticator {
  readonly id: string;
  readonly stats: ThirdPartyStats = newStats('FUNCTION');
  readonly #functionName: string;
  readonly #scripts: FunctionScripts | undefined;

  /** Without `scripts` (a runtime built without the sandbox) every CONNECT is answered "unavailable". */
  constructor(functionName: string, scripts: FunctionScripts | undefined) {
    this.id = `function:${functionName}`;
    this.#functionName = functionName;
    this.#scripts = scripts;
  }

  get functionName(): string {
    return this.#functionName;
  }

  async authenticate(credential: Credential): Promise<Decision> {
    let script;
    try {
      if (this.#scripts === undefined) throw new Error('this runtime runs no verification functions');
      script = await this.#scripts.get(this.#functionName);
    } catch (err) {
      countFailure(this.stats, 'unavailable');
      return { kind: 'unavailable', reason: `function ${this.#functionName}: ${err instanceof Error ? err.message : String(err)}` };
    }
    const result = await script.invoke([{
      userName: credential.username ?? null,
      // Passwords are bytes in MQTT; functions get text, as the reference product hands them.
      password: credential.password?.toString('utf8') ?? null,
      clientId: credential.clientId,
      certificateCommonName: peerCertificate(credential)?.cn ?? null,
    }]);
    if (!result.ok) {
      countFailure(this.stats, result.error.kind);
      return { kind: 'unavailable', reason: `function_${result.error.kind}: ${result.error.message}` };
    }
    const verdict = interpretVerificationOutput(result.value);
    switch (verdict.kind) {
      case 'accept':
        this.stats.calls.accept++;
        return { kind: 'allow', deviceName: verdict.deviceName, ...(verdict.acl !== undefined ? { acl: verdict.acl } : {}) };
      case 'reject':
        this.stats.calls.reject++;
        return { kind: 'deny', reasonCode: RC.BAD_USER_NAME_OR_PASSWORD, reason: verdict.message === null ? verdict.reason : `${verdict.reason}: ${verdict.message}` };
      case 'invalid':
        countFailure(this.stats, 'bad-result');
        return { kind: 'unavailable', reason: `function_bad_result: ${verdict.reason}` };
    }
  }
}
