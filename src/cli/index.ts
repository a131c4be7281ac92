/** The `gatehouse` command. */
import { Command } from 'commander';
import { registerBrokerCommand } from './broker-command.ts';
import { registerAdminCommands } from './admin-commands.ts';
import { registerCertCommands } from './cert-commands.ts';
import { registerDataDirCommands } from './data-dir-commands.ts';
import { registerEventCommands } from './event-commands.ts';
import { registerPlatformCommands } from './platform-commands.ts';

const program = new Command('gatehouse').description('Gatehouse: a self-hostable MQTT access gateway');
registerBrokerCommand(program);
registerAdminCommands(program);
registerEventCommands(program);
registerPlatformCommands(program);
registerCertCommands(program);
registerDataDirCommands(program);
await program.parseAsync(process.argv);
