/** The registry's public surface: what the API, `main` and the data plane may import. */
export { createRegistry, Registry, type RegistryOptions } from './registry.ts';
export type { GatewayService, GatewaySaveResult } from './gateway-service.ts';
export type { ProductService } from './product-service.ts';
export type { DeviceService, DevicePage } from './device-service.ts';
export type { FunctionService } from './function-service.ts';
export {
  WEBHOOK_EVENT_TYPES, type WebhookService, type Webhook, type WebhookInput, type WebhookTarget,
} from './webhook-service.ts';
export * from './ports.ts';
export * from './types.ts';
export * from './access-control.ts';
export * from './gateway-limits.ts';
export * from './connection-events.ts';
export type {
  DeviceRef, EventMeta, GatewayChange, RegistryEventMap, RegistryEventName, RegistryEventSource, RegistryListener,
} from './events.ts';
export { SHARED_EVENTS } from './events.ts';
export type { RegistryEventBus, RemoteEventReceiver } from './event-bus.ts';
export { renderTemplate, parseTemplate, type TemplateContext } from './templates.ts';
export { describeDeviceCertificate, daysLeft } from './certificates.ts';
export { ocspStateWarnings, uniqueWarnings } from './gateway-warnings.ts';
export { verifyPassword, hashPassword, DEFAULT_SCRYPT_COST, type ScryptCost } from './passwords.ts';
export { checkDeviceName } from './device-rules.ts';
export { interpretVerificationOutput, checkedDeviceName, deviceAclOf, type VerificationVerdict } from './verification-result.ts';
export type { DryRunResult, VerificationEvent } from './function-sandbox.ts';
export { MAX_IMPORT_ROWS, MAX_IMPORT_OPERATION_ROWS } from './device-import.ts';
export { MAX_REPORTED_FAILURES, type ImportOperation, type ImportOperationState } from './import-operations.ts';
export { IMPORT_STEP, type ImportProgress } from './device-importer.ts';
export { decodeCsv, SUPPORTED_CHARSETS } from './csv-encoding.ts';
export { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MAX_SEARCH_LENGTH, DEVICE_STATUSES, type DeviceListInput } from './device-list-query.ts';
export { TIMEOUT_MS as FUNCTION_TIMEOUT_MS, MEMORY_MB as FUNCTION_MEMORY_MB } from './function-rules.ts';
export { DEFAULT_PORT, MIN_PORT, MAX_PORT, MAX_PARAMS, MAX_PARAM_LENGTH, MAX_SCRIPT_LENGTH } from './gateway-rules.ts';
