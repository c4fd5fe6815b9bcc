/**
 * `ferry policy create|list|inspect|update|delete`: schedule policies (pxctl `sched-policy`), shared by cloud backup
 * schedules: `ferry policy create nightly --daily 02:00,7 --weekly sun@03:00,4 --keep-monthly 12`.
 */
import { type Command, InvalidArgumentError } from 'commander';
import type { SchedulePolicy } from '../../api/index.js';
import { clientFor, output } from '../context.js';
import { renderTable } from '../format.js';
import {
  addScheduleFlags,
  describeInterval,
  describeRetention,
  intervalsOf,
  retentionOf,
  type ScheduleFlagValues,
} from './schedule-flags.js';

function policyBody(name: string, flags: ScheduleFlagValues): Record<string, unknown> {
  const schedules = intervalsOf(flags);
  if (schedules.length === 0) {
    throw new InvalidArgumentError('give at least one of --periodic, --daily, --weekly, --monthly');
  }
  const retention = retentionOf(flags);
  return { schedule_policy: { name, schedules, ...(retention !== undefined && { retention }) } };
}

function describePolicy(p: SchedulePolicy): string {
  const rows: [string, string][] = [
    ['Name', p.name],
    ['Intervals', p.schedules.map(describeInterval).join('; ')],
    ['GFS', describeRetention(p.retention)],
    ['Owner', p.owner === '' ? '-' : p.owner],
    ['Created', p.create_time],
    ['Updated', p.update_time],
  ];
  return rows.map(([k, v]) => `${k.padEnd(9)}  :  ${v}`).join('\n');
}

/** Adds `policy` and its subcommands to `program`. */
export function registerPolicyCommands(program: Command): void {
  const policy = program
    .command('policy')
    .description('schedule policies: when backups run (UTC) and how many to keep (per interval and GFS)');

  addScheduleFlags(policy.command('create').description('create a schedule policy').argument('<name>')).action(
    async (name: string, flags: ScheduleFlagValues, command: Command) => {
      const response = await clientFor(command).request('POST', '/v1/schedulepolicies', policyBody(name, flags));
      output(command, response, () => `Schedule policy ${name} created`);
    },
  );

  addScheduleFlags(
    policy.command('update').description('replace a policy’s intervals and GFS rules').argument('<name>'),
  ).action(async (name: string, flags: ScheduleFlagValues, command: Command) => {
    const response = await clientFor(command).request('PUT', '/v1/schedulepolicies', policyBody(name, flags));
    output(command, response, () => `Schedule policy ${name} updated`);
  });

  policy
    .command('list')
    .description('list schedule policies')
    .action(async (_options: unknown, command: Command) => {
      const response = await clientFor(command).request<{ policies: SchedulePolicy[] }>('GET', '/v1/schedulepolicies');
      output(command, response, () =>
        response.policies.length === 0
          ? 'no policies'
          : renderTable(
              ['NAME', 'INTERVALS', 'GFS', 'OWNER'],
              response.policies.map((p) => [
                p.name,
                p.schedules.map(describeInterval).join('; '),
                describeRetention(p.retention),
                p.owner === '' ? '-' : p.owner,
              ]),
            ),
      );
    });

  policy
    .command('inspect')
    .description('show one schedule policy')
    .argument('<name>')
    .action(async (name: string, _options: unknown, command: Command) => {
      const response = await clientFor(command).request<{ policy: SchedulePolicy }>(
        'GET',
        `/v1/schedulepolicies/inspect/${encodeURIComponent(name)}`,
      );
      output(command, response, () => describePolicy(response.policy));
    });

  policy
    .command('delete')
    .description('delete a schedule policy (refused while a schedule uses it)')
    .argument('<name>')
    .action(async (name: string, _options: unknown, command: Command) => {
      const response = await clientFor(command).request('DELETE', `/v1/schedulepolicies/${encodeURIComponent(name)}`);
      output(command, response, () => `Schedule policy ${name} deleted`);
    });
}
