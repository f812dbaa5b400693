<?php
/**
 * Usage billing (WHMCS 7.9+ Usage Metrics): what a reseller can price per unit, read from
 * the provisioner's GET /api/v1/usage (as the upstream last reported it).
 *
 * Tenants are the services' domains as WHMCS stores them (MetaData
 * ListAccountsUniqueIdentifierField "domain"): WHMCS matches usage() keys and the
 * tenantUsage() argument against tblhosting.domain.
 */

namespace WHMCS\Module\Server\Provisioner;

use WHMCS\Database\Capsule;

final class Metrics
{
    /** system name => [display name, unit kind] ("count" or "megabytes") */
    public const METRICS = [
        'mailboxes' => ['Mailboxes', 'count', 'Mailbox', 'Mailboxes'],
        'enhanced_mailboxes' => ['Enhanced mailboxes', 'count', 'Enhanced mailbox', 'Enhanced mailboxes'],
        'aliases' => ['Aliases', 'count', 'Alias', 'Aliases'],
        'distribution_lists' => ['Distribution lists', 'count', 'Distribution list', 'Distribution lists'],
        'storage_mb' => ['Storage', 'megabytes', null, null],
    ];

    /** The usage rows of this server's services, keyed by WHMCS service id. @return array<string, array> */
    public static function usageByService(Connection $connection, ?string $serviceId = null): array
    {
        if ($serviceId !== null) {
            $answer = $connection->api('MetricProvider', 'GET', '/api/v1/services/' . rawurlencode($serviceId) . '/usage');
            if ($answer->status === 404) {
                return [];
            }
            if ($answer->status !== 200 || !is_array($answer->json)) {
                throw new \RuntimeException('GET /api/v1/services/' . $serviceId . '/usage answered '
                    . $answer->describe() . '.');
            }
            return [$serviceId => $answer->json];
        }
        $out = [];
        foreach (Sync::all($connection, 'MetricProvider', '/api/v1/usage?status=active,suspended') as $item) {
            $out[(string) ($item['service_id'] ?? '')] = $item;
        }
        return $out;
    }

    /** @return array<string, string> WHMCS service id => domain (the tenant) of this server's services */
    public static function tenants(int $serverId): array
    {
        $out = [];
        if (!class_exists(Capsule::class)) {
            return $out;
        }
        foreach (Capsule::table('tblhosting')->where('server', $serverId)->get() as $row) {
            $row = (object) (array) $row;
            if ((string) ($row->domain ?? '') !== '') {
                $out[(string) $row->id] = (string) $row->domain;
            }
        }
        return $out;
    }

    /** One usage row's values by metric; null where the upstream reported nothing. @return array<string, ?float> */
    public static function values(array $item): array
    {
        $usage = is_array($item['usage'] ?? null) ? $item['usage'] : [];
        $values = [];
        foreach (array_keys(self::METRICS) as $name) {
            $values[$name] = isset($usage[$name]) && is_numeric($usage[$name]) ? (float) $usage[$name] : null;
        }
        return $values;
    }

    /** When the usage was read upstream, as a Unix time, or null. */
    public static function collectedAt(array $item): ?int
    {
        $at = (string) ($item['collected_at'] ?? '');
        $time = $at !== '' ? strtotime($at) : false;
        return $time === false ? null : $time;
    }
}
