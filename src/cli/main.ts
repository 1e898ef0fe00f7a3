// The `weir` command: `serve` runs the proxy, `validate` checks a config file, and the admin
// commands (status, get, set-weights, …, rollout …, events) drive a running weir through its
// admin API. This file only declares the commands and their options (commander) and turns
// every outcome into an exit code (docs/cli.md); each command lives in commands/.

import { Command, CommanderError, Option } from 'commander'
import { commandContext, DEFAULT_ADMIN_URL, type CommandContext, type GlobalOptions } from './context.ts'
import { CliError, EXIT, usageError, type ExitCode } from './exit-codes.ts'
import { routeWrite, type WriteFlags } from './route-write.ts'
import { events } from './commands/events.ts'
import { get } from './commands/get.ts'
import { rolloutGate, rolloutStart } from './commands/rollout.ts'
import { serveCommand } from './commands/serve.ts'
import { setUpstream } from './commands/set-upstream.ts'
import { setWeights } from './commands/set-weights.ts'
import { shadow } from './commands/shadow.ts'
import { status } from './commands/status.ts'
import { rolloutWatch } from './commands/watch.ts'

const EXIT_CODES = `exit codes: 0 ok, 1 refused or failed (the API said no, a rollout failed), 2 usage error,
  3 rollout watch: no rollout on the route, 4 the admin API cannot be reached, 5 the token was
  refused (401), 6 rollout watch: --timeout passed first`

function configFile (options: { config?: string }): string {
  const file = options.config ?? process.env.WEIR_CONFIG
  if (file === undefined || file === '') throw usageError('no config file: pass --config FILE or set WEIR_CONFIG')
  return file
}

/** Ends the process: `weir: <message>` on stderr for a CliError, its exit code. */
function finish (err: unknown): never {
  if (err instanceof CliError) {
    process.stderr.write(`weir: ${err.message}\n`)
    process.exit(err.exitCode)
  }
  process.stderr.write(`weir: ${(err as Error)?.stack ?? String(err)}\n`)
  process.exit(EXIT.failed)
}

type Handler = (ctx: CommandContext, ...args: never[]) => Promise<ExitCode | void>

/** An admin command's action: the context from the global options, then the exit code. */
const admin = (handler: Handler) => async (...args: unknown[]): Promise<void> => {
  const command = args.at(-1) as Command
  try {
    const code = await (handler as (ctx: CommandContext, ...rest: unknown[]) => Promise<ExitCode | void>)(
      commandContext(command.optsWithGlobals<GlobalOptions>()), ...args.slice(0, -1))
    process.exit(code ?? EXIT.ok)
  } catch (err) {
    finish(err)
  }
}

const writeFlags = (command: Command, remove = true): Command => {
  if (remove) command.option('--force', 'change it even while a rollout drives the route (?force=true)')
  return command.option('--if-match <revision>', 'refuse (412) when the route is no longer at this revision')
}
const flagsOf = (options: { force?: boolean; ifMatch?: string }): WriteFlags => ({
  ...(options.force === true ? { force: true } : {}),
  ...(options.ifMatch === undefined ? {} : { ifMatch: options.ifMatch }),
})

function buildProgram (): Command {
  const program = new Command('weir')
  program
    .usage('<command> [options]')
    .description('weir, a progressive-delivery edge proxy: run it, check its config, or drive a running one through its admin API.')
    .option('--admin <url>', `the admin API (default: $WEIR_ADMIN_URL, else ${DEFAULT_ADMIN_URL})`)
    .option('--token <token>', 'the admin bearer token (default: $WEIR_ADMIN_TOKEN)')
    .addOption(new Option('-o, --output <format>', 'json prints the API\'s JSON').choices(['table', 'json']).default('table'))
    .addHelpText('after', `\n${EXIT_CODES}\nsee docs/cli.md`)
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(text.replace(/^error: /, 'weir: ')) })
    .showHelpAfterError('(weir --help for usage)')
    // No command, or one that is not known: commander hands it here.
    .argument('[command]')
    .allowExcessArguments()
    .action((name: string | undefined) => {
      if (name === undefined) {
        process.stdout.write(program.helpInformation())
        process.exit(EXIT.usage)
      }
      process.stderr.write(`weir: unknown command "${name}"\n(weir --help for usage)\n`)
      process.exit(EXIT.usage)
    })

  program.command('serve').description('run the proxy')
    .option('-c, --config <file>', 'the config file (default: $WEIR_CONFIG)')
    .option('--workers <auto|N>', 'data-path processes, over the config\'s `workers` (auto: one per CPU)')
    .action((options: { config?: string; workers?: string }) => {
      try {
        serveCommand(configFile(options), options.workers)
      } catch (err) {
        finish(err)
      }
    })
  program.command('validate').description('check a config file; print every problem as "path: reason"; exit 1 if any')
    .option('-c, --config <file>', 'the config file (default: $WEIR_CONFIG)')
    .action(async (options: { config?: string }) => {
      try {
        const file = configFile(options)
        // Loaded here only: the config stack costs the admin commands a third of a second.
        const { validate } = await import('./commands/validate.ts')
        process.exit(validate(file))
      } catch (err) {
        finish(err)
      }
    })

  program.command('status').description('every route: weights, revision, rollout, and per version req/s, error rate and p99 over the last minute')
    .action(admin(status))
  program.command('get').argument('<route>').description('one route: upstreams, weights, shadow, its rollout and last check')
    .action(admin(get))
  writeFlags(program.command('set-weights').argument('<route>').argument('<weights...>', 'version=percent, e.g. stable=90 canary=10; a version not given gets 0')
    .description('set a route\'s weights'))
    .action(admin((ctx, route: string, pairs: string[], options: WriteFlags) => setWeights(ctx, route, pairs, flagsOf(options))))
  writeFlags(program.command('set-upstream').argument('<route>').argument('<upstreams...>', 'version=URL[,URL], or version=none to take it away')
    .description('point versions of a route at new upstreams'))
    .action(admin((ctx, route: string, pairs: string[], options: WriteFlags) => setUpstream(ctx, route, pairs, flagsOf(options))))
  writeFlags(program.command('switch').argument('<route>').description('blue/green: 100 % to one version at once')
    .addOption(new Option('--to <version>', 'the version that takes all traffic').choices(['green', 'stable']).makeOptionMandatory()))
    .action(admin((ctx, route: string, options: WriteFlags & { to: string }) => routeWrite(ctx, route, 'POST', 'switch', { to: options.to }, flagsOf(options))))
  writeFlags(program.command('rollback').argument('<route>').description('stable 100 % at once; a running rollout ends failed'), false)
    .action(admin((ctx, route: string, options: WriteFlags) => routeWrite(ctx, route, 'POST', 'rollback', {}, flagsOf(options))))
  writeFlags(program.command('reset').argument('<route>').description('serve the config file\'s weights, upstreams and shadow settings again'))
    .action(admin((ctx, route: string, options: WriteFlags) => routeWrite(ctx, route, 'POST', 'reset', {}, flagsOf(options))))
  writeFlags(program.command('shadow').argument('<route>').description('change a route\'s shadow settings (the others stay)')
    .option('--percent <n>', 'the share of requests copied to the shadow, 0–100')
    .option('--compare', 'compare shadow answers with the served ones')
    .option('--no-compare', 'stop comparing'), false)
    .action(admin((ctx, route: string, options: { percent?: string; compare?: boolean; ifMatch?: string }) => shadow(ctx, route, options)))

  const rollout = program.command('rollout').description('start, steer and watch a rollout')
  rollout.command('start').argument('<route>').description('start a rollout: the route\'s policy, with what the options change')
    .option('--file <policy>', 'a rollout policy, YAML or JSON (a route\'s `rollout` key)')
    .option('--steps <list>', 'canary weights, e.g. 10,50,100')
    .option('--interval <duration>', 'time per step, e.g. 30s')
    .option('--strategy <canary|bluegreen>', 'the strategy')
    .action(admin(rolloutStart))
  for (const gate of ['pause', 'resume', 'abort'] as const) {
    rollout.command(gate).argument('<route>').description(`${gate} the route's rollout`)
      .action(admin((ctx, route: string) => rolloutGate(ctx, route, gate)))
  }
  rollout.command('promote').argument('<route>').description('the next step now, without its check')
    .option('--full', 'promote all the way at once')
    .action(admin((ctx, route: string, options: { full?: boolean }) => rolloutGate(ctx, route, 'promote', options.full === true)))
  rollout.command('watch').argument('<route>').description('follow the rollout until it ends: exit 0 succeeded, 1 failed, 3 none, 6 --timeout')
    .option('--interval-ms <ms>', 'how often to ask (default 500)')
    .option('--timeout <duration>', 'stop watching after this long (exit 6), e.g. 10m')
    .action(admin(rolloutWatch))

  program.command('events').description('the event log, oldest first')
    .option('--since <id>', 'only events after this id')
    .option('--route <route>', 'only this route\'s events')
    .option('--follow', 'keep printing new events until interrupted')
    .option('--interval-ms <ms>', 'with --follow: how often to ask (default 1000)')
    .action(admin(events))
  return program
}

// `weir events --follow | head`: a reader that went away ends the command quietly.
process.stdout.on('error', (err: NodeJS.ErrnoException) => process.exit(err.code === 'EPIPE' ? EXIT.ok : EXIT.failed))

try {
  await buildProgram().parseAsync(process.argv.slice(2), { from: 'user' })
} catch (err) {
  if (!(err instanceof CommanderError)) finish(err)
  // --help and --version end 0; every other commander error is a usage error, already printed.
  process.exit(err.code === 'commander.helpDisplayed' || err.code === 'commander.version' ? EXIT.ok : EXIT.usage)
}
