/** Third-party verification by a stored function run in the sandbox. */
export { FunctionAuthenticator } from './function-authenticator.ts';
export { FunctionScripts } from './function-scripts.ts';
