export { compileSessionAcl, SessionAcl, type AclValues } from './session-acl.ts';
