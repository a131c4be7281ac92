/**
 * Encryption at rest for the secrets the registry must give back later (server private keys): AES-256-GCM
 * under the master key. The associated data binds a ciphertext to the row and field it belongs to, so a
 * value copied into another gateway's row does not decrypt there.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { GatehouseError } from '../core/errors.ts';

const VERSION = 'v1';
const IV_BYTES = 12;

export class SecretBox {
  readonly #key: Buffer;

  constructor(masterKey: Buffer) {
    if (masterKey.length !== 32) throw new GatehouseError('GW_ERR_CONFIG_INVALID', 'the master key must be 32 bytes', 'GATEHOUSE_MASTER_KEY');
    this.#key = Buffer.from(masterKey);
  }

  /** `v1:<iv>:<tag>:<ciphertext>`, base64 parts. */
  encrypt(plaintext: string, context: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return [VERSION, iv.toString('base64'), cipher.getAuthTag().toString('base64'), ciphertext.toString('base64')].join(':');
  }

  decrypt(sealed: string, context: string): string {
    const [version, iv, tag, ciphertext] = sealed.split(':');
    if (version !== VERSION || iv === undefined || tag === undefined || ciphertext === undefined) {
      throw new GatehouseError('GW_ERR_INTERNAL', `stored secret for ${context} has an unknown format`);
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, Buffer.from(iv, 'base64'));
      decipher.setAAD(Buffer.from(context, 'utf8'));
      decipher.setAuthTag(Buffer.from(tag, 'base64'));
      return Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64')), decipher.final()]).toString('utf8');
    } catch {
      throw new GatehouseError('GW_ERR_INTERNAL', `stored secret for ${context} does not decrypt with the master key`);
    }
  }

  /**
   * A value that identifies the key without revealing it, kept in storage so that a start with a
   * different master key fails at once instead of at the first decryption.
   */
  keyCheck(): string {
    return createHmac('sha256', this.#key).update('gatehouse master key check v1').digest('hex');
  }
}
