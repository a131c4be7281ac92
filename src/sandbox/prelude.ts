/*
 * JavaScript that runs inside every script's QuickJS context before the operator's code. Its
 * completion value is `setup(configJson, hostLog, hostHmac, hostHash, hostTimingSafeEqual, hostNext)`,
 * which installs the host library (console, gatehouse.crypto, gatehouse.encoding, TextEncoder,
 * TextDecoder), removes globals a script has no use for, and returns `bindEntry(fn)`. That gives
 * back the two functions the worker calls: `[invoke(id, argCodes, ...args), invokeBatch(buffer, start)]`.
 *
 * invokeBatch runs many calls in one crossing: their arguments come packed in one ArrayBuffer
 * (worker-protocol.ts, `packCalls`), and before each call it asks the host `hostNext(answerOfThePrevious)`,
 * which hands the previous answer over, starts the next call's time limit and console, and answers
 * true when the batch must stop there (the host then drops the instance or is done). A call that
 * answers with a promise ends the crossing: invokeBatch returns the promise, the worker runs its jobs,
 * and calls invokeBatch again from the next call.
 *
 * invoke answers with one string, so a result leaves the sandbox as a single copy:
 *   'v' + JSON   the value
 *   't' + JSON   the script threw: {name, message, stack}
 *   'b' + text   the value is not acceptable JSON (text says why)
 *   'm' + text   an allocation hit the memory cap and the script let the error through
 * An async result is a promise of that string. The sandbox has no timers and no I/O, so once the
 * worker has run the call's pending jobs, a still-pending promise can never settle by itself: the
 * worker answers it as "never settled" (quickjs-worker.ts).
 *
 * Encodings are plain JavaScript here, so the per-message path does not leave the sandbox;
 * hashing and HMAC call node:crypto on the host, with strings as strings and bytes as a copied
 * ArrayBuffer (the only binary type the host can read out of QuickJS). Intrinsics the wrapper
 * relies on are captured up front so a script that patches builtins only confuses itself.
 *
 * Written without backticks or dollar-brace, so it can live in String.raw unchanged.
 */
export const PRELUDE_SOURCE = String.raw`
'use strict';
(function setup(configJson, hostLog, hostHmac, hostHash, hostTimingSafeEqual, hostNext) {
  const g = globalThis;
  const ReflectApply = Reflect.apply;
  const stringify = JSON.stringify;
  const parse = JSON.parse;
  const getProto = Object.getPrototypeOf;
  const ObjectProto = Object.prototype;
  const isArray = Array.isArray;
  const isView = ArrayBuffer.isView;
  const isFinite = Number.isFinite;
  const freeze = Object.freeze;
  const defineProperty = Object.defineProperty;
  const PromiseCtor = Promise;
  const StringCtor = String;
  const U8 = Uint8Array;
  const fromCharCode = String.fromCharCode;
  const slice = String.prototype.slice;
  const split = String.prototype.split;
  const includes = String.prototype.includes;
  const join = Array.prototype.join;
  const objectToString = Object.prototype.toString;
  const ErrorCtor = Error;
  const ArrayBufferCtor = ArrayBuffer;
  const bufferSlice = ArrayBuffer.prototype.slice;
  const I32 = Int32Array;
  const U16 = Uint16Array;
  const subarray = Object.getPrototypeOf(Uint8Array.prototype).subarray;
  const NumberCtor = Number;
  const config = parse(configJson);

  for (const name of ['WebAssembly', 'SharedArrayBuffer', 'Atomics', 'queueMicrotask']) delete g[name];

  const maxLines = config.maxLines;
  const maxChars = config.maxChars;
  const requireObject = config.requireObject;
  const maxResultChars = config.maxResultChars;

  // ---- per-call state -----------------------------------------------------------------------
  let current = 0;
  let lines = 0;
  let truncated = false;

  function cut(text, max) {
    return text.length > max ? ReflectApply(slice, text, [0, max - 1]) + '\u2026' : text;
  }

  // The frames below the operator's code are ours (invoke, and the native apply that calls the
  // entry); an operator has no use for them.
  function ownFrames(stack) {
    // A stack overflow's trace has thousands of frames; only the top ones are ever shown.
    const top = stack.length > 8000 ? ReflectApply(slice, stack, [0, 8000]) : stack;
    const lines = ReflectApply(split, top, ['\n']);
    let end = lines.length;
    for (let i = 0; i < lines.length; i++) {
      if (ReflectApply(includes, lines[i], ['gatehouse:'])) { end = i; break; }
    }
    while (end > 0 && (lines[end - 1] === '' || ReflectApply(includes, lines[end - 1], ['(native)']))) end--;
    const kept = [];
    for (let i = 0; i < end; i++) kept[i] = lines[i];
    return ReflectApply(join, kept, ['\n']);
  }

  function safeString(value) {
    try { return StringCtor(value); } catch (e) { return ReflectApply(objectToString, value, []); }
  }

  function typeName(value) {
    if (value === null) return 'null';
    if (value === undefined) return 'undefined';
    if (isArray(value)) return 'an array';
    if (typeof value === 'object') {
      try {
        const ctor = value.constructor;
        if (getProto(value) !== ObjectProto && getProto(value) !== null && typeof ctor === 'function' && ctor.name) {
          return 'a ' + ctor.name;
        }
      } catch (e) { /* a hostile getter: fall through */ }
      return 'an object';
    }
    return 'a ' + typeof value;
  }

  // ---- console ------------------------------------------------------------------------------
  function formatValue(value) {
    switch (typeof value) {
      case 'string': return value;
      case 'function': return '[Function' + (value.name ? ': ' + value.name : ' (anonymous)') + ']';
      case 'bigint': return safeString(value) + 'n';
      case 'symbol': return safeString(value.description === undefined ? 'Symbol()' : 'Symbol(' + value.description + ')');
      case 'object': break;
      default: return safeString(value);
    }
    if (value === null) return 'null';
    try {
      if (value instanceof ErrorCtor) {
        // QuickJS's stack holds only the frames; print it under "Name: message" as Node does.
        const head = value.name + ': ' + value.message;
        const frames = typeof value.stack === 'string' ? ownFrames(value.stack) : '';
        return frames ? head + '\n' + frames : head;
      }
      if (isView(value) && typeof value.length === 'number') {
        const shown = [];
        for (let i = 0; i < value.length && i < 64; i++) shown.push(value[i]);
        return typeName(value).slice(2) + '(' + value.length + ') [' + shown.join(', ') + (value.length > 64 ? ', \u2026' : '') + ']';
      }
      const text = stringify(value, (key, v) => typeof v === 'bigint' ? safeString(v) + 'n'
        : typeof v === 'function' ? '[Function]' : v);
      return text === undefined ? safeString(value) : text;
    } catch (e) {
      return '[unprintable ' + typeName(value) + ']';
    }
  }

  function emit(level, args) {
    if (lines >= maxLines) {
      if (!truncated) {
        truncated = true;
        hostLog(current, 'truncated', '');
      }
      return;
    }
    lines++;
    let text = '';
    for (let i = 0; i < args.length && text.length <= maxChars; i++) {
      text += (i === 0 ? '' : ' ') + formatValue(args[i]);
    }
    hostLog(current, level, cut(text, maxChars));
  }

  const consoleObject = freeze({
    log: (...args) => emit('log', args),
    info: (...args) => emit('log', args),
    debug: (...args) => emit('log', args),
    warn: (...args) => emit('warn', args),
    error: (...args) => emit('error', args),
  });

  // ---- bytes and encodings ------------------------------------------------------------------
  function utf8Encode(input) {
    const s = StringCtor(input);
    const out = new U8(s.length * 3);
    let n = 0;
    for (let i = 0; i < s.length; i++) {
      let c = s.charCodeAt(i);
      if (c < 0x80) { out[n++] = c; continue; }
      if (c < 0x800) { out[n++] = 0xc0 | (c >> 6); out[n++] = 0x80 | (c & 63); continue; }
      if (c >= 0xd800 && c <= 0xdfff) {
        const d = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
        if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
          const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
          i++;
          out[n++] = 0xf0 | (cp >> 18);
          out[n++] = 0x80 | ((cp >> 12) & 63);
          out[n++] = 0x80 | ((cp >> 6) & 63);
          out[n++] = 0x80 | (cp & 63);
          continue;
        }
        c = 0xfffd; // a lone surrogate, replaced as TextEncoder does
      }
      out[n++] = 0xe0 | (c >> 12);
      out[n++] = 0x80 | ((c >> 6) & 63);
      out[n++] = 0x80 | (c & 63);
    }
    return out.slice(0, n);
  }

  function bytesOnly(value, what) {
    if (value instanceof U8) return value;
    if (value instanceof ArrayBuffer) return new U8(value);
    if (isView(value)) return new U8(value.buffer, value.byteOffset, value.byteLength);
    if (isArray(value)) return U8.from(value);
    throw new TypeError(what + ' must be bytes (Uint8Array, ArrayBuffer or an array of numbers)');
  }

  function toBytes(value, what) {
    return typeof value === 'string' ? utf8Encode(value) : bytesOnly(value, what + ' (or a string)');
  }

  // WHATWG UTF-8 decode: each maximal invalid subsequence becomes one U+FFFD (or, when fatal, an error).
  function utf8Decode(input, fatal) {
    const b = bytesOnly(input, 'utf8Decode input');
    let out = '';
    let units = [];
    const push = (u) => {
      units.push(u);
      if (units.length >= 8192) { out += ReflectApply(fromCharCode, null, units); units = []; }
    };
    const invalid = () => {
      if (fatal) throw new TypeError('The encoded data was not valid UTF-8');
      push(0xfffd);
    };
    let cp = 0, needed = 0, seen = 0, lower = 0x80, upper = 0xbf;
    for (let i = 0; i < b.length; i++) {
      const x = b[i];
      if (needed === 0) {
        if (x < 0x80) push(x);
        else if (x >= 0xc2 && x <= 0xdf) { needed = 1; cp = x & 0x1f; }
        else if (x >= 0xe0 && x <= 0xef) {
          if (x === 0xe0) lower = 0xa0; else if (x === 0xed) upper = 0x9f;
          needed = 2; cp = x & 0xf;
        } else if (x >= 0xf0 && x <= 0xf4) {
          if (x === 0xf0) lower = 0x90; else if (x === 0xf4) upper = 0x8f;
          needed = 3; cp = x & 7;
        } else invalid();
        continue;
      }
      if (x < lower || x > upper) {
        cp = needed = seen = 0; lower = 0x80; upper = 0xbf;
        invalid();
        i--; // the byte may start the next sequence
        continue;
      }
      lower = 0x80; upper = 0xbf;
      cp = (cp << 6) | (x & 0x3f);
      if (++seen === needed) {
        if (cp > 0xffff) { cp -= 0x10000; push(0xd800 + (cp >> 10)); push(0xdc00 + (cp & 0x3ff)); }
        else push(cp);
        cp = needed = seen = 0;
      }
    }
    if (needed) invalid();
    return out + ReflectApply(fromCharCode, null, units);
  }

  const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const B64_VALUE = new Int16Array(128).fill(-1);
  for (let i = 0; i < 64; i++) { B64_VALUE[B64.charCodeAt(i)] = i; B64_VALUE[B64URL.charCodeAt(i)] = i; }

  function base64Encode(input, urlSafe) {
    const b = toBytes(input, 'base64Encode input');
    const a = urlSafe ? B64URL : B64;
    let out = '';
    let i = 0;
    for (; i + 2 < b.length; i += 3) {
      const n = (b[i] << 16) | (b[i + 1] << 8) | b[i + 2];
      out += a[n >> 18] + a[(n >> 12) & 63] + a[(n >> 6) & 63] + a[n & 63];
    }
    if (b.length - i === 1) {
      const n = b[i] << 16;
      out += a[n >> 18] + a[(n >> 12) & 63] + (urlSafe ? '' : '==');
    } else if (b.length - i === 2) {
      const n = (b[i] << 16) | (b[i + 1] << 8);
      out += a[n >> 18] + a[(n >> 12) & 63] + a[(n >> 6) & 63] + (urlSafe ? '' : '=');
    }
    return out;
  }

  // Accepts both alphabets, missing padding and ASCII whitespace; anything else is an error.
  function base64Decode(input) {
    if (typeof input !== 'string') throw new TypeError('base64Decode expects a string');
    let s = input.replace(/[\t\n\f\r ]+/g, '');
    if (s.endsWith('==')) s = s.slice(0, -2); else if (s.endsWith('=')) s = s.slice(0, -1);
    if (s.length % 4 === 1) throw new TypeError('invalid base64: wrong length');
    const out = new U8((s.length * 3) >> 2);
    let n = 0, acc = 0, bits = 0;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      const v = c < 128 ? B64_VALUE[c] : -1;
      if (v < 0) throw new TypeError('invalid base64: unexpected character at position ' + i);
      acc = ((acc << 6) | v) & 0xffffff;
      bits += 6;
      if (bits >= 8) { bits -= 8; out[n++] = (acc >> bits) & 0xff; }
    }
    return out;
  }

  const HEX = [];
  for (let i = 0; i < 256; i++) HEX.push((i < 16 ? '0' : '') + i.toString(16));

  function hexEncode(input) {
    const b = toBytes(input, 'hexEncode input');
    let out = '';
    for (let i = 0; i < b.length; i++) out += HEX[b[i]];
    return out;
  }

  function hexValue(c) {
    if (c >= 48 && c <= 57) return c - 48;
    if (c >= 97 && c <= 102) return c - 87;
    if (c >= 65 && c <= 70) return c - 55;
    return -1;
  }

  function hexDecode(input) {
    if (typeof input !== 'string') throw new TypeError('hexDecode expects a string');
    if (input.length % 2 !== 0) throw new TypeError('invalid hex: odd length');
    const out = new U8(input.length / 2);
    for (let i = 0; i < out.length; i++) {
      const hi = hexValue(input.charCodeAt(2 * i));
      const lo = hexValue(input.charCodeAt(2 * i + 1));
      if (hi < 0 || lo < 0) throw new TypeError('invalid hex: unexpected character near position ' + 2 * i);
      out[i] = (hi << 4) | lo;
    }
    return out;
  }

  // Strings go to the host as strings (hashed as UTF-8); bytes as an ArrayBuffer of their own.
  function hostInput(value, what) {
    if (typeof value === 'string') return value;
    const view = bytesOnly(value, what + ' (or a string)');
    return ReflectApply(bufferSlice, view.buffer, [view.byteOffset, view.byteOffset + view.byteLength]);
  }
  // Digests in the 'bytes' encoding come back as an ArrayBuffer.
  const hostOutput = (value) => value instanceof ArrayBufferCtor ? new U8(value) : value;

  const gatehouse = freeze({
    crypto: freeze({
      hmac: (alg, key, data, encoding) => hostOutput(hostHmac(alg, hostInput(key, 'key'), hostInput(data, 'data'), encoding)),
      hash: (alg, data, encoding) => hostOutput(hostHash(alg, hostInput(data, 'data'), encoding)),
      timingSafeEqual: (a, b) => hostTimingSafeEqual(hostInput(a, 'a'), hostInput(b, 'b')),
    }),
    encoding: freeze({
      base64Encode: (input) => base64Encode(input, false),
      base64UrlEncode: (input) => base64Encode(input, true),
      base64Decode,
      hexEncode,
      hexDecode,
      utf8Encode: (input) => utf8Encode(input),
      utf8Decode: (input) => utf8Decode(input, false),
    }),
  });

  class TextEncoder {
    get encoding() { return 'utf-8'; }
    encode(input) { return utf8Encode(input === undefined ? '' : input); }
  }

  class TextDecoder {
    #fatal;
    #ignoreBOM;
    constructor(label, options) {
      const name = label === undefined ? 'utf-8' : StringCtor(label).trim().toLowerCase();
      if (name !== 'utf-8' && name !== 'utf8' && name !== 'unicode-1-1-utf-8') {
        throw new RangeError('TextDecoder here supports only utf-8, not ' + StringCtor(label));
      }
      this.#fatal = Boolean(options && options.fatal);
      this.#ignoreBOM = Boolean(options && options.ignoreBOM);
    }
    get encoding() { return 'utf-8'; }
    get fatal() { return this.#fatal; }
    get ignoreBOM() { return this.#ignoreBOM; }
    decode(input, options) {
      if (options && options.stream) throw new TypeError('TextDecoder here does not support streaming');
      if (input === undefined) return '';
      const text = utf8Decode(input, this.#fatal);
      return !this.#ignoreBOM && text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
    }
  }
  freeze(TextEncoder); freeze(TextEncoder.prototype);
  freeze(TextDecoder); freeze(TextDecoder.prototype);

  defineProperty(g, 'gatehouse', { value: gatehouse, writable: false, enumerable: false, configurable: false });
  for (const [name, value] of [['console', consoleObject], ['TextEncoder', TextEncoder], ['TextDecoder', TextDecoder]]) {
    defineProperty(g, name, { value, writable: true, enumerable: false, configurable: true });
  }
  g.module = { exports: {} };
  g.exports = g.module.exports;

  // ---- results ------------------------------------------------------------------------------
  class BadResult {
    constructor(message) { this.message = message; }
  }

  // Called by stringify for every value of every result: the common cases return at once, and the
  // words of a refusal are put together only when there is one.
  function where(key) {
    return key === '' ? 'the result is ' : 'the result contains (at key ' + stringify(key) + ') ';
  }

  function checkJson(key, value) {
    switch (typeof value) {
      case 'string': case 'boolean': return value;
      case 'function': throw new BadResult(where(key) + 'a function');
      case 'symbol': throw new BadResult(where(key) + 'a symbol');
      case 'bigint': throw new BadResult(where(key) + 'a bigint');
      case 'number':
        if (!isFinite(value)) throw new BadResult(where(key) + safeString(value) + ', which JSON cannot represent');
        break;
      case 'object':
        if (value !== null && !isArray(value)) {
          const proto = getProto(value);
          if (proto !== ObjectProto && proto !== null) throw new BadResult(where(key) + typeName(value) + ', not a plain object');
        }
        break;
    }
    return value;
  }

  function finish(value) {
    if (requireObject) {
      const proto = value !== null && typeof value === 'object' && !isArray(value) ? getProto(value) : undefined;
      if (proto !== ObjectProto && proto !== null) {
        return 'bexpected the function to return a plain object, got ' + typeName(value);
      }
    } else if (value === undefined || typeof value === 'function' || typeof value === 'symbol') {
      return 'bexpected the function to return a JSON value, got ' + typeName(value);
    }
    let text;
    try {
      text = stringify(value, checkJson);
    } catch (e) {
      if (e instanceof BadResult) return 'b' + e.message;
      return 'bthe result cannot be turned into JSON: ' + describe(e).message;
    }
    if (text === undefined) return 'bthe result cannot be turned into JSON';
    if (text.length > maxResultChars) {
      return 'bthe result is too large (' + text.length + ' characters, limit ' + maxResultChars + ')';
    }
    return 'v' + text;
  }

  function describe(error) {
    let name = '';
    let message = '';
    let stack = '';
    try {
      if (error !== null && (typeof error === 'object' || typeof error === 'function')) {
        name = typeof error.name === 'string' ? error.name : '';
        message = typeof error.message === 'string' ? error.message : formatValue(error);
        stack = typeof error.stack === 'string' ? ownFrames(error.stack) : '';
      } else {
        message = formatValue(error);
      }
    } catch (e) {
      message = 'an error whose details could not be read';
    }
    return { name: cut(name, 100), message: cut(message, 1000), stack: cut(stack, 4000) };
  }

  function thrown(error) {
    const d = describe(error);
    if (d.name === 'InternalError' && d.message === 'out of memory') return 'm' + d.message;
    return 't' + stringify(d);
  }

  function run(entry, id, args) {
    current = id;
    lines = 0;
    truncated = false;
    let result;
    let then;
    try {
      result = ReflectApply(entry, undefined, args);
      if (result !== null && (typeof result === 'object' || typeof result === 'function')) then = result.then;
    } catch (e) {
      return thrown(e);
    }
    if (typeof then !== 'function') return finish(result);
    return new PromiseCtor((settle) => {
      try {
        ReflectApply(then, result, [(value) => settle(finish(value)), (error) => settle(thrown(error))]);
      } catch (e) {
        settle(thrown(e));
      }
    });
  }

  // ---- a packed batch (layout: worker-protocol.ts, packCalls) --------------------------------
  // fromCharCode over a typed array in slices: an argument list has a length limit.
  function unpackText(units, start, length) {
    let text = '';
    for (let at = start; at < start + length; at += 4096) {
      const end = at + 4096 < start + length ? at + 4096 : start + length;
      text += ReflectApply(fromCharCode, null, ReflectApply(subarray, units, [at, end]));
    }
    return text;
  }

  function unpackArg(buffer, units, bytesStart, kind, start, length) {
    switch (kind) {
      case 0: return undefined;
      case 1: return null;
      case 2: return false;
      case 3: return true;
      case 4: return NumberCtor(unpackText(units, start, length));
      case 5: return unpackText(units, start, length);
      case 6: return parse(unpackText(units, start, length));
      // Each call's bytes in an ArrayBuffer of their own, as invoke gives them.
      default: return new U8(ReflectApply(bufferSlice, buffer, [bytesStart + start, bytesStart + start + length]));
    }
  }

  function bindBatch(entry) {
    return function invokeBatch(buffer, start) {
      const top = new I32(buffer, 0, 4);
      const count = top[0];
      const head = new I32(buffer, 0, top[3]);
      const units = new U16(buffer, head[1], (head[2] - head[1]) / 2);
      const bytesStart = head[2];
      let at = 4;
      for (let k = 0; k < start; k++) at += 1 + 3 * head[at];
      // '' before the first call: no answer yet (every answer has its one-letter prefix).
      let answer = '';
      for (let k = start; k < count; k++) {
        if (hostNext(answer)) return 0;
        const args = [];
        const argc = head[at++];
        for (let i = 0; i < argc; i++, at += 3) {
          args[i] = unpackArg(buffer, units, bytesStart, head[at], head[at + 1], head[at + 2]);
        }
        answer = run(entry, k + 1, args);
        if (typeof answer !== 'string') return answer;
      }
      hostNext(answer);
      return 0;
    };
  }

  function bindEntry(entry) {
    if (typeof entry !== 'function') throw new TypeError('the entry is not a function');
    function invoke(id, codes, ...raw) {
      const args = [];
      for (let i = 0; i < raw.length; i++) {
        const code = codes[i];
        args[i] = code === 'j' ? parse(raw[i]) : code === 'b' ? new U8(raw[i]) : raw[i];
      }
      return run(entry, id, args);
    }
    return [invoke, bindBatch(entry)];
  }

  return bindEntry;
})
`;

/** Evaluates to the entry function the operator's script defined, or undefined. */
export function entryLookupSource(entry: string): string {
  if (!/^[A-Za-z_$][\w$]*$/.test(entry)) throw new TypeError(`not an identifier: ${entry}`);
  return `(function () {
  try { if (typeof ${entry} === 'function') return ${entry}; } catch (e) { /* in its temporal dead zone */ }
  const m = globalThis.module;
  const candidate = m !== null && typeof m === 'object' && m.exports != null ? m.exports.${entry} : undefined;
  return typeof candidate === 'function' ? candidate : undefined;
})()`;
}
