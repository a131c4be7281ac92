/**
 * Stored messages keep their payload as bytes (issue 12), not base64 text. Base64 made every payload a
 * third larger on disk and cost an encode per message on the event loop, and for a 1 MB message a
 * 1.4 MB string in the JavaScript heap — what a flood of large messages spent its garbage collection on.
 *
 * PostgreSQL converts the column in place (`bytea`, decoded by the server). SQLite keeps the column's
 * declared type (it cannot alter one; a TEXT column stores a BLOB as a BLOB) and the rows are rewritten
 * here, a chunk at a time, from base64 text to bytes.
 */
import { sql, type Kysely, type Migration } from 'kysely';
import type { Dialect } from '../schema.ts';

const ROWS_PER_STEP = 500;

export function messagePayloadBlobSchema(dialect: Dialect): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      if (dialect === 'postgres') {
        await sql`alter table messages alter column payload type bytea using decode(payload, 'base64')`.execute(db);
        return;
      }
      for (;;) {
        const rows = (await sql<{ id: string; payload: string }>`select id, payload from messages where typeof(payload) = 'text' limit ${ROWS_PER_STEP}`
          .execute(db)).rows;
        for (const r of rows) await sql`update messages set payload = ${Buffer.from(r.payload, 'base64')} where id = ${r.id}`.execute(db);
        if (rows.length < ROWS_PER_STEP) break;
      }
    },
  };
}
