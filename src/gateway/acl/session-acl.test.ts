import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileSessionAcl, type AclValues } from './session-acl.ts';
import { checkAccessControl, PER_DEVICE_TEMPLATE, type AclRule } from '../../registry/access-control.ts';
import { GatehouseError } from '../../core/errors.ts';

const d1: AclValues = { deviceName: 'd1', username: 'user-1', clientId: 'c-1', productKey: 'pk', 'cert.cn': undefined };

test('the per-device template: publish and subscribe only under devices/<name>/', { timeout: 5_000 }, () => {
  const acl = compileSessionAcl(PER_DEVICE_TEMPLATE.rules, PER_DEVICE_TEMPLATE.defaultAction, d1);
  assert.equal(acl.canPublish('devices/d1/telemetry'), true);
  assert.equal(acl.canPublish('devices/d1'), true); // '#' covers the parent level [MQTT-4.7.1-2]
  assert.equal(acl.canPublish('devices/d2/telemetry'), false);
  assert.equal(acl.canPublish('other'), false);
  assert.equal(acl.canSubscribe('devices/d1/#'), true);
  assert.equal(acl.canSubscribe('devices/d1/+/t'), true);
  assert.equal(acl.canSubscribe('devices/+/t'), false);
  assert.equal(acl.canSubscribe('devices/#'), false);
  assert.equal(acl.canSubscribe('#'), false);
  assert.equal(acl.canSubscribe('+/d1/x'), false);
});

test('the first rule that applies decides, else the default', { timeout: 5_000 }, () => {
  const rules: AclRule[] = [
    { action: 'DENY', access: 'PUBLISH', topic: 'devices/${deviceName}/cmd' },
    { action: 'ALLOW', access: 'ALL', topic: 'devices/${deviceName}/#' },
    { action: 'DENY', access: 'SUBSCRIBE', topic: '#' },
  ];
  const acl = compileSessionAcl(rules, 'ALLOW', d1);
  assert.equal(acl.canPublish('devices/d1/cmd'), false);
  assert.equal(acl.canPublish('devices/d1/up'), true);
  assert.equal(acl.canPublish('public/news'), true); // default ALLOW
  assert.equal(acl.canSubscribe('devices/d1/cmd'), true); // the DENY is PUBLISH only
  assert.equal(acl.canSubscribe('public/news'), false);
  // Asked twice: the cached answer is the same.
  assert.equal(acl.canPublish('devices/d1/cmd'), false);
});

test('a DENY refuses any subscription that could receive one of its topics', { timeout: 5_000 }, () => {
  const acl = compileSessionAcl([{ action: 'DENY', access: 'SUBSCRIBE', topic: 'devices/+/secret' }], 'ALLOW', d1);
  assert.equal(acl.canSubscribe('devices/#'), false);
  assert.equal(acl.canSubscribe('devices/d1/+'), false);
  assert.equal(acl.canSubscribe('#'), false);
  assert.equal(acl.canSubscribe('devices/d1/public'), true);
  assert.equal(acl.canSubscribe('devices/d1/secret/x'), true);
});

test('a placeholder value with +, # or / never matches; a missing one neither', { timeout: 5_000 }, () => {
  const rules: AclRule[] = [{ action: 'ALLOW', access: 'ALL', topic: 'u/${username}/#' }, { action: 'ALLOW', access: 'ALL', topic: 'cn/${cert.cn}' }];
  for (const username of ['+', '#', 'a/b', 'x+', '']) {
    const acl = compileSessionAcl(rules, 'DENY', { ...d1, username });
    assert.equal(acl.canPublish(`u/${username}/t`), false, username);
    assert.equal(acl.canSubscribe('u/#'), false, username);
    assert.equal(acl.canSubscribe('u/+/#'), false, username);
    // The rule is dropped whole, not cut short at the bad value (which would leave a rule for 'u').
    assert.equal(acl.canPublish('u'), false, username);
    assert.equal(acl.canSubscribe('u'), false, username);
  }
  const noCert = compileSessionAcl(rules, 'DENY', d1);
  assert.equal(noCert.canPublish('cn/undefined'), false);
  const withCert = compileSessionAcl(rules, 'DENY', { ...d1, 'cert.cn': 'meter-7' });
  assert.equal(withCert.canPublish('cn/meter-7'), true);
  assert.equal(withCert.canPublish('u/user-1/t'), true);
});

test('rule filters also cover $-topics (authority, not delivery)', { timeout: 5_000 }, () => {
  const acl = compileSessionAcl([{ action: 'DENY', access: 'ALL', topic: '#' }], 'ALLOW', d1);
  assert.equal(acl.canPublish('$SYS/x'), false);
  assert.equal(acl.canSubscribe('$SYS/#'), false);
});

test('allowsEverything only without a refusal possible', { timeout: 5_000 }, () => {
  assert.equal(compileSessionAcl([], 'ALLOW', d1).allowsEverything, true);
  assert.equal(compileSessionAcl([], 'DENY', d1).allowsEverything, false);
  assert.equal(compileSessionAcl([{ action: 'DENY', access: 'PUBLISH', topic: 'x' }], 'ALLOW', d1).allowsEverything, false);
  assert.equal(compileSessionAcl([{ action: 'ALLOW', access: 'ALL', topic: 'x' }], 'ALLOW', d1).allowsEverything, true);
  assert.equal(compileSessionAcl([{ action: 'ALLOW', access: 'ALL', topic: 'x' }, { action: 'DENY', access: 'ALL', topic: 'y' }], 'ALLOW', d1).allowsEverything, false);
  assert.equal(compileSessionAcl([{ action: 'ALLOW', access: 'ALL', topic: 'x' }], 'DENY', d1).allowsEverything, false);
});

test('rule checks name the field and the rule', { timeout: 5_000 }, () => {
  const codeOf = (value: unknown): [string, string | undefined] => {
    try {
      checkAccessControl(value);
    } catch (err) {
      assert.ok(err instanceof GatehouseError);
      return [err.code, err.field];
    }
    return ['ok', undefined];
  };
  assert.deepEqual(codeOf({ defaultAction: 'MAYBE', rules: [] }), ['GW_ERR_ACL_ACTION_INVALID', 'accessControl.defaultAction']);
  assert.deepEqual(codeOf({ defaultAction: 'ALLOW', rules: [{ action: 'ALLOW', access: 'READ', topic: 'a' }] }), ['GW_ERR_ACL_ACCESS_INVALID', 'accessControl.rules[0].access']);
  assert.deepEqual(codeOf({ defaultAction: 'ALLOW', rules: [{ action: 'ALLOW', access: 'ALL', topic: 'a/#/b' }] }), ['GW_ERR_ACL_TOPIC_INVALID', 'accessControl.rules[0].topic']);
  assert.deepEqual(codeOf({ defaultAction: 'ALLOW', rules: [{ action: 'ALLOW', access: 'ALL', topic: 'a/dev-${deviceName}' }] }), ['GW_ERR_ACL_TOPIC_INVALID', 'accessControl.rules[0].topic']);
  assert.deepEqual(codeOf({ defaultAction: 'ALLOW', rules: [{ action: 'ALLOW', access: 'ALL', topic: 'a/${password}' }] }), ['GW_ERR_ACL_PLACEHOLDER_UNKNOWN', 'accessControl.rules[0].topic']);
  assert.deepEqual(codeOf({ defaultAction: 'ALLOW', rules: [{ action: 'ALLOW', access: 'ALL', topic: '$share/g/a' }] }), ['GW_ERR_ACL_TOPIC_INVALID', 'accessControl.rules[0].topic']);
  assert.deepEqual(codeOf({ defaultAction: 'ALLOW', rules: Array.from({ length: 101 }, () => ({ action: 'ALLOW', access: 'ALL', topic: 'a' })) }), ['GW_ERR_ACL_TOO_MANY_RULES', 'accessControl.rules']);
  assert.deepEqual(codeOf(PER_DEVICE_TEMPLATE), ['ok', undefined]);
});

test('an ALLOW with + covers exactly one level: not the parent, not a deeper filter, not a # in its place', { timeout: 5_000 }, () => {
  const acl = compileSessionAcl([{ action: 'ALLOW', access: 'ALL', topic: 'a/+' }, { action: 'ALLOW', access: 'ALL', topic: 'b/+/#' }], 'DENY', d1);
  assert.equal(acl.canSubscribe('a/x'), true);
  assert.equal(acl.canSubscribe('a/+'), true, 'a + under a + is covered');
  assert.equal(acl.canSubscribe('a/#'), false, 'a # reaches deeper than the +');
  assert.equal(acl.canSubscribe('a/x/y'), false);
  assert.equal(acl.canSubscribe('a'), false);
  assert.equal(acl.canPublish('a/x'), true);
  assert.equal(acl.canPublish('a/x/y'), false);
  assert.equal(acl.canPublish('a'), false);
  // '+' needs a level to be there, even before a '#' [MQTT-4.7.1-2].
  assert.equal(acl.canPublish('b'), false);
  assert.equal(acl.canPublish('b/x'), true);
  assert.equal(acl.canSubscribe('b'), false);
  assert.equal(acl.canSubscribe('b/x/#'), true);
});

test('a DENY does not reach a filter one level deeper than its last level, even ending in +', { timeout: 5_000 }, () => {
  const acl = compileSessionAcl([{ action: 'DENY', access: 'SUBSCRIBE', topic: 'devices/+/secret' }], 'ALLOW', d1);
  assert.equal(acl.canSubscribe('devices/d1/secret'), false);
  assert.equal(acl.canSubscribe('devices/d1/secret/+'), true);
  assert.equal(acl.canSubscribe('devices/+'), true, 'no topic of two levels is a secret');
});
