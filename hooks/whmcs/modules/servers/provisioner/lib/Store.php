<?php
/**
 * The module's own tables in the WHMCS database (created on first use via Capsule).
 *
 * mod_provisioner_deliveries: per service, the one command still in flight — its action,
 *   a fingerprint of what it sends, its webhook-id and occurred_at. See
 *   Commands::webhookId() for how this keeps the SAME webhook-id across retries.
 * mod_provisioner_secrets: one-time credentials the provider generated that could not be
 *   saved into the service itself; WHMCS-encrypted, shown once on the admin's service page.
 */

namespace WHMCS\Module\Server\Provisioner;

use WHMCS\Database\Capsule;

final class Store
{
    public const DELIVERIES = 'mod_provisioner_deliveries';
    public const SECRETS = 'mod_provisioner_secrets';

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
            if ($table === self::DELIVERIES) {
                $schema->create($table, static function ($t) {
                    $t->string('service_id', 64)->primary();
                    $t->string('action', 32);
                    $t->string('fingerprint', 64);
                    $t->string('webhook_id', 190);
                    $t->string('occurred_at', 40);
                    $t->timestamp('created_at')->nullable();
                });
            } else {
                $schema->create($table, static function ($t) {
                    $t->increments('id');
                    $t->string('service_id', 64)->index();
                    $t->string('name', 64);
                    $t->text('value');
                    $t->timestamp('created_at')->nullable();
                });
            }
        }
        self::$ready[$table] = true;
    }

    /** The command in flight for a service, or null. */
    public static function pending(string $serviceId): ?object
    {
        self::ensure(self::DELIVERIES);
        $row = Capsule::table(self::DELIVERIES)->where('service_id', $serviceId)->first();
        return $row ? (object) (array) $row : null;
    }

    public static function remember(string $serviceId, string $action, string $fingerprint, string $webhookId,
                                    string $occurredAt): void
    {
        self::ensure(self::DELIVERIES);
        Capsule::table(self::DELIVERIES)->where('service_id', $serviceId)->delete();
        Capsule::table(self::DELIVERIES)->insert([
            'service_id' => $serviceId, 'action' => $action, 'fingerprint' => $fingerprint,
            'webhook_id' => $webhookId, 'occurred_at' => $occurredAt, 'created_at' => gmdate('Y-m-d H:i:s'),
        ]);
    }

    /** Done with a command: the next one for the service is a new event. */
    public static function forget(string $serviceId, string $webhookId): void
    {
        self::ensure(self::DELIVERIES);
        Capsule::table(self::DELIVERIES)->where('service_id', $serviceId)->where('webhook_id', $webhookId)->delete();
    }

    public static function keepSecret(string $serviceId, string $name, string $encrypted): void
    {
        self::ensure(self::SECRETS);
        Capsule::table(self::SECRETS)->insert([
            'service_id' => $serviceId, 'name' => $name, 'value' => $encrypted, 'created_at' => gmdate('Y-m-d H:i:s'),
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
