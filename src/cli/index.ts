/** The `gatehouse` command. */
import { Command } from 'commander';
import { registerBrokerCommand } from './broker-command.ts';

const program = new Command('gatehouse').description('Gatehouse: a self-hostable MQTT access gateway');
registerBrokerCommand(program);
await program.parseAsync(process.argv);
