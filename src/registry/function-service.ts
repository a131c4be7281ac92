/** Verification functions: stored operator code the third-party FUNCTION provider runs in the sandbox. */
import { GatehouseError } from '../core/errors.ts';
import { withDuplicatesTranslated, type RegistryContext } from './context.ts';
import { checkFunctionInput, checkFunctionName } from './function-rules.ts';
import { checkFunctionSource, dryRunFunction, type DryRunResult, type VerificationEvent } from './function-sandbox.ts';
import type { GatewayService } from './gateway-service.ts';
import type { FunctionRecord } from './ports.ts';
import type { FunctionInput, VerificationFunction } from './types.ts';

export class FunctionService {
  readonly #ctx: RegistryContext;
  readonly #gateways: GatewayService;

  constructor(context: RegistryContext, gateways: GatewayService) {
    this.#ctx = context;
    this.#gateways = gateways;
  }

  async create(name: string, input: FunctionInput): Promise<VerificationFunction> {
    checkFunctionName(name);
    const checked = checkFunctionInput(input);
    await checkFunctionSource(this.#ctx.runner, checked.source, checked);
    if (await this.#ctx.storage.functions.get(name)) {
      throw new GatehouseError('GW_ERR_FUNCTION_NAME_TAKEN', `a function named "${name}" exists`, 'name');
    }
    const at = this.#ctx.now().toISOString();
    const record: FunctionRecord = { name, ...checked, createdAt: at, updatedAt: at };
    await withDuplicatesTranslated(() => this.#ctx.storage.functions.insert(record));
    this.#ctx.events.emit('function.created', { name });
    return { ...record };
  }

  /** Creates or replaces; `created` says which. */
  async put(name: string, input: FunctionInput): Promise<{ fn: VerificationFunction; created: boolean }> {
    checkFunctionName(name);
    const checked = checkFunctionInput(input);
    const existing = await this.#ctx.storage.functions.get(name);
    if (!existing) return { fn: await this.create(name, input), created: true };
    await checkFunctionSource(this.#ctx.runner, checked.source, checked);
    const record: FunctionRecord = { ...existing, ...checked, updatedAt: this.#ctx.now().toISOString() };
    await this.#ctx.storage.functions.update(record);
    this.#ctx.events.emit('function.updated', { name });
    return { fn: { ...record }, created: false };
  }

  async list(): Promise<VerificationFunction[]> {
    return this.#ctx.storage.functions.list();
  }

  async get(name: string): Promise<VerificationFunction> {
    const record = await this.#ctx.storage.functions.get(name);
    if (!record) throw new GatehouseError('GW_ERR_FUNCTION_NOT_FOUND', `no function named "${name}"`, 'name');
    return record;
  }

  /** Undefined when there is no function of that name. */
  async find(name: string): Promise<VerificationFunction | undefined> {
    return this.#ctx.storage.functions.get(name);
  }

  /** Runs the stored function once on `event` in a fresh isolate, as a CONNECT would (nothing is recorded). */
  async invoke(name: string, event: VerificationEvent): Promise<DryRunResult> {
    const fn = await this.get(name);
    return dryRunFunction(this.#ctx.runner, fn.source, fn, event);
  }

  /** Refused while a gateway verifies with it: that gateway would reject every device. */
  async delete(name: string): Promise<void> {
    await this.get(name);
    const users = await this.#gateways.usingFunction(name);
    if (users.length > 0) {
      throw new GatehouseError('GW_ERR_FUNCTION_IN_USE',
        `gateway(s) ${users.map((g) => `"${g.name}"`).join(', ')} verify devices with "${name}"; change them first`, 'name');
    }
    await this.#ctx.storage.functions.delete(name);
    this.#ctx.events.emit('function.deleted', { name });
  }
}
