<?php
/**
 * The module's own tables in the WHMCS database (created on first use via Capsule).
 *
 * mod_provisioner_commands: one row per command sent that has not ended yet: its service,
 *   server, action, a fingerprint of what it sends, its webhook-id and occurred_at, and
 *   where it stands ("sent": the module call still waits for the answer; "open": no
 *   definitive answer, or the job failed and the failure was shown to WHMCS, so a Retry
 *   re-sends it; "queued": accepted, the job still runs, so its outcome comes by callback
 *   or by the cron catch-up). See Commands.
 * mod_provisioner_outcomes: the job outcomes brought into WHMCS, keyed by job id, attempts
 *   and state (the primary key makes the callback and the cron catch-up apply each outcome
 *   once; a job queued again by a Retry ends anew, with more attempts).
 * mod_provisioner_callbacks: webhook-ids of callbacks already handled (a redelivery is
 *   answered without acting again).
 * mod_provisioner_secrets: one-time credentials the provider generated that could not be
 *   saved into the service itself; WHMCS-encrypted, shown once on the admin's service page.
 *
 * mod_provisioner_deliveries, of earlier versions of the module: its commands are taken
 * over (as "open") when mod_provisioner_commands is created, so a Retry still re-sends
 * them; it is not used after that and can be dropped.
 */

namespace WHMCS\Module\Server\Provisioner;

use WHMCS\Database\Capsule;

final class Store
{
    public const COMMANDS = 'mod_provisioner_commands';
    public const OUTCOMES = 'mod_provisioner_outcomes';
    public const CALLBACKS = 'mod_provisioner_callbacks';
    public const SECRETS = 'mod_provisioner_secrets';
    /** the one-command-per-service table of earlier versions */
    private const LEGACY = 'mod_provisioner_deliveries';

    public const SENT = 'sent';
    public const OPEN = 'open';
    public const QUEUED = 'queued';
    /** seconds after which a command still "sent" is taken as left by a call that died */
    public const SENT_STALE = 120;

    /** @var array<string, bool> */
    private static array $ready = [];

    public static function available(): bool
    {
        return class_exists(Capsule::class);
    }

    private static function ensure(string $table): void
    {
        if (!empty(self::$ready[$table])) {
            return;
        }
        $schema = Capsule::schema();
        if (!$schema->hasTable($table)) {
            self::create($schema, $table);
            if ($table === self::COMMANDS && $schema->hasTable(self::LEGACY)) {
                self::takeOverLegacy();
            }
        }
        self::$ready[$table] = true;
    }

    /**
     * Another request (a callback, the cron, a second admin) may make the same table at
     * the same moment, e.g. right after an upgrade: the one that loses the race uses it.
     */
    private static function create($schema, string $table): void
    {
        try {
            $schema->create($table, static function ($t) use ($table) {
                switch ($table) {
                    case self::COMMANDS:
                        $t->string('webhook_id', 190)->primary();
                        $t->string('service_id', 64)->index();
                        $t->integer('server_id')->default(0);
                        $t->string('action', 32);
                        $t->string('fingerprint', 64);
                        $t->string('occurred_at', 40);
                        $t->string('state', 16);
                        $t->string('job_id', 64)->nullable();
                        $t->timestamp('updated_at')->nullable();
                        break;
                    case self::OUTCOMES:
                        $t->string('outcome', 100)->primary();
                        $t->string('job_id', 64)->index();
                        $t->string('service_id', 64);
                        $t->string('state', 16);
                        $t->string('via', 16);
                        $t->timestamp('applied_at')->nullable();
                        break;
                    case self::CALLBACKS:
                        $t->string('webhook_id', 190)->primary();
                        $t->timestamp('received_at')->nullable();
                        break;
                    default:
                        $t->increments('id');
                        $t->string('service_id', 64)->index();
                        $t->string('name', 64);
                        $t->text('value');
                        $t->timestamp('created_at')->nullable();
                }
            });
        } catch (\Throwable $e) {
            if (!$schema->hasTable($table)) {
                throw $e;
            }
        }
    }

    /**
     * The commands an earlier version of the module left in flight, as open commands. Run
     * by every request that found no commands table, the one that made it and any that
     * raced it, so that none reads the table before the take-over: each row once.
     */
    private static function takeOverLegacy(): void
    {
        foreach (Capsule::table(self::LEGACY)->get() as $row) {
            $row = (object) (array) $row;
            $taken = static fn (): bool => Capsule::table(self::COMMANDS)
                ->where('webhook_id', (string) $row->webhook_id)->first() !== null;
            if ($taken()) {
                continue;
            }
            try {
                Capsule::table(self::COMMANDS)->insert([
                    'webhook_id' => (string) $row->webhook_id, 'service_id' => (string) $row->service_id,
                    'server_id' => 0, 'action' => (string) $row->action, 'fingerprint' => (string) $row->fingerprint,
                    'occurred_at' => (string) $row->occurred_at, 'state' => self::OPEN, 'job_id' => null,
                    'updated_at' => self::now(),
                ]);
            } catch (\Throwable $e) {
                if (!$taken()) {        // not the racing request's copy of the same row
                    throw $e;
                }
            }
        }
    }

    private static function now(): string
    {
        return gmdate('Y-m-d H:i:s');
    }

    // --- commands in flight ---------------------------------------------------------------------

    /** The newest command of a service that has not ended, or null. */
    public static function latest(string $serviceId): ?object
    {
        self::ensure(self::COMMANDS);
        $latest = null;
        foreach (Capsule::table(self::COMMANDS)->where('service_id', $serviceId)->get() as $row) {
            $row = (object) (array) $row;
            if ($latest === null || strcmp((string) $row->occurred_at, (string) $latest->occurred_at) > 0) {
                $latest = $row;
            }
        }
        return $latest;
    }

    public static function command(string $webhookId): ?object
    {
        self::ensure(self::COMMANDS);
        $row = Capsule::table(self::COMMANDS)->where('webhook_id', $webhookId)->first();
        return $row ? (object) (array) $row : null;
    }

    /**
     * A new command for the service. Older "open" lifecycle commands of the service are
     * replaced (a Retry now sends the new one), and an open billing edit by a newer one;
     * "queued" commands stay until their outcome is known, and an undelivered billing edit
     * stays for the cron to send again.
     */
    public static function remember(string $serviceId, int $serverId, string $action, string $fingerprint,
                                    string $webhookId, string $occurredAt): void
    {
        self::ensure(self::COMMANDS);
        foreach (Capsule::table(self::COMMANDS)->where('service_id', $serviceId)->get() as $row) {
            $row = (object) (array) $row;
            if ((string) $row->state !== self::QUEUED
                && ((string) $row->action === 'update') === ($action === 'update')) {
                Capsule::table(self::COMMANDS)->where('webhook_id', (string) $row->webhook_id)->delete();
            }
        }
        Capsule::table(self::COMMANDS)->insert([
            'webhook_id' => $webhookId, 'service_id' => $serviceId, 'server_id' => $serverId, 'action' => $action,
            'fingerprint' => $fingerprint, 'occurred_at' => $occurredAt, 'state' => self::SENT, 'job_id' => null,
            'updated_at' => self::now(),
        ]);
    }

    /** A command whose module call may still be waiting for its answer. */
    public static function awaitingAnswer(object $command, ?int $now = null): bool
    {
        if ((string) $command->state !== self::SENT) {
            return false;
        }
        $updated = strtotime((string) ($command->updated_at ?? '') . ' UTC');
        return $updated !== false && ($now ?? time()) - $updated < self::SENT_STALE;
    }

    public static function mark(string $webhookId, string $state, ?string $jobId): void
    {
        self::ensure(self::COMMANDS);
        Capsule::table(self::COMMANDS)->where('webhook_id', $webhookId)
            ->update(['state' => $state, 'job_id' => $jobId, 'updated_at' => self::now()]);
    }

    /** A command sent again (a Retry): its answer is awaited once more; its job id is kept. */
    public static function resending(string $webhookId): void
    {
        self::ensure(self::COMMANDS);
        Capsule::table(self::COMMANDS)->where('webhook_id', $webhookId)
            ->update(['state' => self::SENT, 'updated_at' => self::now()]);
    }

    /** Done with a command: it ended, or the provisioner stored nothing under its id. */
    public static function forget(string $webhookId): void
    {
        self::ensure(self::COMMANDS);
        Capsule::table(self::COMMANDS)->where('webhook_id', $webhookId)->delete();
    }

    /** @return list<object> commands waiting on a job, oldest first, at most $limit */
    public static function queued(int $limit): array
    {
        self::ensure(self::COMMANDS);
        $rows = [];
        foreach (Capsule::table(self::COMMANDS)->where('state', self::QUEUED)->get() as $row) {
            $rows[] = (object) (array) $row;
        }
        usort($rows, static fn ($a, $b) => strcmp((string) $a->occurred_at, (string) $b->occurred_at));
        return array_slice($rows, 0, $limit);
    }

    /**
     * @return list<object> open commands of one action (e.g. billing edits to send again),
     *                      and those a call that died left "sent"
     */
    public static function open(string $action, int $limit): array
    {
        self::ensure(self::COMMANDS);
        $rows = [];
        foreach (Capsule::table(self::COMMANDS)->where('action', $action)->get() as $row) {
            $row = (object) (array) $row;
            if ((string) $row->state === self::OPEN
                || ((string) $row->state === self::SENT && !self::awaitingAnswer($row))) {
                $rows[] = $row;
            }
        }
        return array_slice($rows, 0, $limit);
    }

    // --- outcomes and callbacks, each handled once ------------------------------------------------

    /**
     * Claims how a job ended (after so many attempts) for WHMCS: true the first time only
     * (the primary key decides).
     */
    public static function claimOutcome(string $jobId, int $attempts, string $serviceId, string $state,
                                        string $via): bool
    {
        self::ensure(self::OUTCOMES);
        $outcome = $jobId . '.' . $attempts . '.' . $state;
        try {
            Capsule::table(self::OUTCOMES)->insert([
                'outcome' => $outcome, 'job_id' => $jobId, 'service_id' => $serviceId, 'state' => $state,
                'via' => $via, 'applied_at' => self::now(),
            ]);
            return true;
        } catch (\Throwable $e) {
            if (Capsule::table(self::OUTCOMES)->where('outcome', $outcome)->first()) {
                return false;            // applied already (by the callback, or the cron)
            }
            throw $e;
        }
    }

    public static function callbackSeen(string $webhookId): bool
    {
        self::ensure(self::CALLBACKS);
        return Capsule::table(self::CALLBACKS)->where('webhook_id', $webhookId)->first() !== null;
    }

    public static function rememberCallback(string $webhookId): void
    {
        self::ensure(self::CALLBACKS);
        try {
            Capsule::table(self::CALLBACKS)->insert(['webhook_id' => $webhookId, 'received_at' => self::now()]);
        } catch (\Throwable $e) {
            // Two deliveries of one callback at once: the outcome claim kept it to one effect.
        }
    }

    // --- one-time secrets -------------------------------------------------------------------------

    public static function keepSecret(string $serviceId, string $name, string $encrypted): void
    {
        self::ensure(self::SECRETS);
        Capsule::table(self::SECRETS)->insert([
            'service_id' => $serviceId, 'name' => $name, 'value' => $encrypted, 'created_at' => self::now(),
        ]);
    }

    /** The kept secrets of a service, removed as they are read (shown once). @return array<string, string> */
    public static function takeSecrets(string $serviceId): array
    {
        self::ensure(self::SECRETS);
        $out = [];
        $query = Capsule::table(self::SECRETS)->where('service_id', $serviceId);
        foreach ($query->get() as $row) {
            $row = (object) (array) $row;
            $out[(string) $row->name] = (string) $row->value;
        }
        if ($out) {
            Capsule::table(self::SECRETS)->where('service_id', $serviceId)->delete();
        }
        return $out;
    }
}
