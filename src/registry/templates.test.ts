import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isKnownVariable, parseTemplate, renderTemplate, type TemplateContext } from './templates.ts';

const context: TemplateContext = {
  username: 'UN001', password: 'PW001', clientId: 'client-9',
  cert: { cn: 'CN001', serial: '1003', issuer: 'CN=Test CA' },
  userProperties: { model: 'TH-2', empty: '' },
};

test('known variables: the fixed six and userProperties.<key>', { timeout: 5_000 }, () => {
  for (const name of ['username', 'password', 'clientId', 'cert.cn', 'cert.serial', 'cert.issuer', 'userProperties.model', 'userProperties.a.b']) {
    assert.equal(isKnownVariable(name), true, name);
  }
  for (const name of ['user', 'clientid', 'cert', 'cert.subject', 'userProperties.', 'userProperties', '']) {
    assert.equal(isKnownVariable(name), false, name);
  }
});

test('parse splits text and variables; rejects unknown and unterminated ones', { timeout: 5_000 }, () => {
  assert.deepEqual(parseTemplate('sn-${clientId}/${cert.cn}'), { ok: true, parts: [{ text: 'sn-' }, { variable: 'clientId' }, { text: '/' }, { variable: 'cert.cn' }] });
  assert.deepEqual(parseTemplate(''), { ok: true, parts: [] });
  assert.deepEqual(parseTemplate('$ {not} a variable'), { ok: true, parts: [{ text: '$ {not} a variable' }] });
  const unknown = parseTemplate('${serial}');
  assert.equal(unknown.ok, false);
  assert.match(unknown.ok ? '' : unknown.message, /unknown variable \$\{serial\}/);
  const open = parseTemplate('x-${username');
  assert.equal(open.ok, false);
  assert.match(open.ok ? '' : open.message, /unterminated/);
});

test('render fills every variable; missing values render empty', { timeout: 5_000 }, () => {
  assert.equal(renderTemplate('${username}:${password}@${clientId}', context), 'UN001:PW001@client-9');
  assert.equal(renderTemplate('${cert.cn}|${cert.serial}|${cert.issuer}', context), 'CN001|1003|CN=Test CA');
  assert.equal(renderTemplate('m=${userProperties.model};x=${userProperties.missing}', context), 'm=TH-2;x=');
  assert.equal(renderTemplate('${cert.cn}', { ...context, cert: null }), '');
  assert.equal(renderTemplate('${userProperties.constructor}', context), '', 'no prototype lookups');
  assert.throws(() => renderTemplate('${nope}', context));
});
