/** /products and the devices under each: one-party rows added one by one or imported (JSON or CSV). */
import type { FastifyPluginCallbackTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { GatehouseError } from '../../core/errors.ts';
import type { Registry } from '../../registry/registry.ts';
import { decodeCsv, SUPPORTED_CHARSETS } from '../../registry/index.ts';
import { errorResponses } from '../common-schemas.ts';
import {
  DeviceCreateBody, DeviceList, DeviceListQuery, DeviceParams, DeviceUpdateBody, DeviceView, ImportCsvBody, ImportJsonBody,
  ImportOperationParams, ImportOperationView, ImportResultView, ProductList, ProductParams, ProductView,
} from './schemas.ts';

export interface ProductRoutesOptions {
  registry: Registry;
}

/** 10,000 CSV rows of up to ~140 characters fit comfortably. */
export const IMPORT_BODY_LIMIT = 8 * 1024 * 1024;
/** The same for an import operation's 100,000 rows. */
export const IMPORT_OPERATION_BODY_LIMIT = 24 * 1024 * 1024;

export const productRoutes: FastifyPluginCallbackTypebox<ProductRoutesOptions> = (app, { registry }, done) => {
  // Bytes, decoded here: a BOM decides, else strict UTF-8 (the first bad byte refused by line and
  // byte), unless the sender names the charset (`text/csv; charset=…` or `?charset=`).
  app.addContentTypeParser('text/csv', { parseAs: 'buffer', bodyLimit: IMPORT_BODY_LIMIT }, (request, body, parsed) => {
    const fromHeader = /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(request.headers['content-type'] ?? '')?.[1];
    const fromQuery = (request.query as { charset?: unknown } | undefined)?.charset;
    try {
      parsed(null, decodeCsv(body as Buffer, fromHeader ?? (typeof fromQuery === 'string' ? fromQuery : undefined)));
    } catch (error) {
      parsed(error as Error, undefined);
    }
  });

  app.get('/products', {
    schema: { tags: ['products'], summary: 'List products (one per gateway)', response: { 200: ProductList, ...errorResponses } },
  }, async () => ({ items: await registry.products.list() }));

  app.get('/products/:productKey', {
    schema: { tags: ['products'], summary: 'Get a product', params: ProductParams, response: { 200: ProductView, ...errorResponses } },
  }, (request) => registry.products.get(request.params.productKey));

  const tags = ['devices'];

  app.post('/products/:productKey/devices', {
    schema: {
      tags, summary: 'Add one device (a one-party row)', params: ProductParams, body: DeviceCreateBody,
      response: { 201: DeviceView, ...errorResponses },
    },
  }, async (request, reply) => reply.status(201).send(await registry.devices.create(request.params.productKey, request.body)));

  const importBody = {
    content: {
      'application/json': { schema: ImportJsonBody },
      'text/csv': { schema: ImportCsvBody },
    },
  };
  const charsetQuery = Type.Object({
    charset: Type.Optional(Type.String({ description: `The CSV's encoding when it is not UTF-8 (also as text/csv; charset=…): ${SUPPORTED_CHARSETS.join(', ')}` })),
  });
  /** The body as an import: CSV text (text/csv only) or a JSON array. */
  const importInput = (body: unknown, contentType: string | undefined): { csv: string } | { json: unknown } => {
    const isCsv = /^text\/csv\s*(;|$)/i.test(contentType ?? '');
    // fastify also parses text/plain into a string; only text/csv is CSV here.
    if (typeof body === 'string' && !isCsv) {
      throw new GatehouseError('GW_ERR_UNSUPPORTED_MEDIA_TYPE', 'send application/json (an array of rows) or text/csv', 'content-type');
    }
    return typeof body === 'string' ? { csv: body } : { json: body };
  };

  app.post('/products/:productKey/devices/import', {
    bodyLimit: IMPORT_BODY_LIMIT,
    schema: {
      tags,
      summary: 'Import up to 10,000 devices: a JSON array of rows, or text/csv sn,username,password; answers per row when done',
      params: ProductParams, querystring: charsetQuery, body: importBody,
      response: { 200: ImportResultView, ...errorResponses },
    },
  }, async (request) => {
    const input = importInput(request.body, request.headers['content-type']);
    return 'csv' in input
      ? registry.devices.importCsv(request.params.productKey, input.csv)
      : registry.devices.importJson(request.params.productKey, input.json);
  });

  app.post('/products/:productKey/imports', {
    bodyLimit: IMPORT_OPERATION_BODY_LIMIT,
    schema: {
      tags,
      summary: 'Start importing up to 100,000 devices (the same body as devices/import); answers 202 at once, poll the operation for progress',
      params: ProductParams, querystring: charsetQuery, body: importBody,
      response: { 202: ImportOperationView, ...errorResponses },
    },
  }, async (request, reply) => {
    const operation = await registry.devices.startImport(request.params.productKey, importInput(request.body, request.headers['content-type']));
    return reply.status(202)
      .header('location', `/api/v1/products/${encodeURIComponent(operation.productKey)}/imports/${operation.id}`)
      .send(operation);
  });

  app.get('/products/:productKey/imports/:importId', {
    schema: {
      tags, summary: 'An import operation: its progress, and its failed rows once finished', params: ImportOperationParams,
      response: { 200: ImportOperationView, ...errorResponses },
    },
  }, (request) => registry.devices.importOperation(request.params.productKey, request.params.importId));

  app.get('/products/:productKey/devices', {
    schema: {
      tags, summary: 'A page of the devices of a product, by name; searched by a prefix of name, username or SN; by status',
      params: ProductParams, querystring: DeviceListQuery,
      response: { 200: DeviceList, ...errorResponses },
    },
  }, (request) => registry.devices.list(request.params.productKey, request.query));

  app.get('/products/:productKey/devices/:deviceName', {
    schema: { tags, summary: 'Get a device', params: DeviceParams, response: { 200: DeviceView, ...errorResponses } },
  }, (request) => registry.devices.get(request.params.productKey, request.params.deviceName));

  app.patch('/products/:productKey/devices/:deviceName', {
    schema: {
      tags, summary: 'Change password, SN or disabled', params: DeviceParams, body: DeviceUpdateBody,
      response: { 200: DeviceView, ...errorResponses },
    },
  }, (request) => registry.devices.update(request.params.productKey, request.params.deviceName, request.body));

  app.delete('/products/:productKey/devices/:deviceName', {
    schema: {
      tags, summary: 'Delete a device', params: DeviceParams,
      response: { 204: Type.Null({ description: 'Deleted' }), ...errorResponses },
    },
  }, async (request, reply) => {
    await registry.devices.delete(request.params.productKey, request.params.deviceName);
    return reply.status(204).send(null);
  });

  done();
};
