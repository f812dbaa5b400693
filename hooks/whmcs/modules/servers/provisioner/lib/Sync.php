<?php
/**
 * The daily usage update (UsageUpdate) and server sync (ListAccounts), both from the
 * provisioner's paged admin API (per_page 500).
 */

namespace WHMCS\Module\Server\Provisioner;

use WHMCS\Database\Capsule;

final class Sync
{
    public const PER_PAGE = 500;
    /** a stop for a provisioner that keeps answering full pages */
    public const MAX_PAGES = 1000;

    /**
     * GET every page of a list; throws with a readable message on the first failure.
     *
     * @return list<array>
     */
    public static function all(Connection $connection, string $action, string $path): array
    {
        $items = [];
        for ($page = 1; $page <= self::MAX_PAGES; $page++) {
            $separator = str_contains($path, '?') ? '&' : '?';
            $result = $connection->api($action, 'GET', $path . $separator . 'page=' . $page . '&per_page=' . self::PER_PAGE);
            if ($result->status !== 200 || !is_array($result->json) || !is_array($result->json['items'] ?? null)) {
                throw new \RuntimeException(sprintf('GET %s answered %s.', $path, $result->describe()));
            }
            foreach ($result->json['items'] as $item) {
                if (is_array($item)) {
                    $items[] = $item;
                }
            }
            $total = (int) ($result->json['total'] ?? 0);
            if (count($result->json['items']) < self::PER_PAGE || $page * self::PER_PAGE >= $total) {
                break;
            }
        }
        return $items;
    }

    /**
     * Disk usage and limit of every service of this server into tblhosting (MB):
     * diskusage = storage the upstream last reported; disklimit = mailboxes x quota per
     * mailbox (0 when either is unknown or unlimited). Bandwidth is not metered by the
     * e-mail upstreams: bwusage and bwlimit are left as they are.
     */
    public static function usageUpdate(array $params): string
    {
        $log = new ModuleLog();
        try {
            $connection = Connection::fromParams($params, $log);
            $items = self::all($connection, 'UsageUpdate', '/api/v1/usage');
        } catch (\Throwable $e) {
            $log->call('UsageUpdate', 'usage', $e->getMessage());
            return 'Usage update failed: ' . Text::sentence($e->getMessage());
        }
        if (!class_exists(Capsule::class)) {
            return 'Usage update failed: the WHMCS database layer (Capsule) is not available.';
        }
        $serverId = (int) ($params['serverid'] ?? 0);
        $now = date('Y-m-d H:i:s');
        $updated = 0;
        try {
            foreach ($items as $item) {
                $serviceId = (string) ($item['service_id'] ?? '');
                if ($serviceId === '' || !preg_match('/^\d+$/', $serviceId)) {
                    continue;            // not a WHMCS service id
                }
                $usage = is_array($item['usage'] ?? null) ? $item['usage'] : [];
                $limits = is_array($item['limits'] ?? null) ? $item['limits'] : [];
                $values = ['disklimit' => self::diskLimitMb($limits), 'lastupdate' => $now];
                if (!empty($item['collected_at']) && isset($usage['storage_mb'])) {
                    $values['diskusage'] = (int) $usage['storage_mb'];
                }
                $query = Capsule::table('tblhosting')->where('id', (int) $serviceId);
                if ($serverId > 0) {
                    $query = $query->where('server', $serverId);
                }
                $updated += (int) $query->update($values);
            }
        } catch (\Throwable $e) {
            $log->call('UsageUpdate', 'tblhosting', $e->getMessage());
            return 'Usage update failed while writing to tblhosting: ' . Text::sentence($e->getMessage());
        }
        $log->call('UsageUpdate', 'tblhosting', sprintf('%d services read, %d rows updated', count($items), $updated));
        return 'success';
    }

    public static function diskLimitMb(array $limits): int
    {
        $boxes = $limits['mailboxes'] ?? null;
        $quota = $limits['mailbox_quota_gb'] ?? null;
        if (!is_int($boxes) || !is_int($quota) || $boxes < 0 || $quota < 0) {
            return 0;
        }
        return $boxes * $quota * 1024;
    }

    /**
     * Server sync rows: one per live (active or suspended) service of this server's billing
     * source. uniqueIdentifier is the domain (MetaData ListAccountsUniqueIdentifierField,
     * as WHMCS stores it: an IDN in Unicode when intl can convert it back); product is the
     * billing product id the events carry, matched against "Provisioner product id"
     * (configoption2, MetaData ListAccountsProductField).
     */
    public static function listAccounts(array $params): array
    {
        $log = new ModuleLog();
        try {
            $connection = Connection::fromParams($params, $log);
            $items = self::all($connection, 'ListAccounts', '/api/v1/services?status=active,suspended');
        } catch (\Throwable $e) {
            $log->call('ListAccounts', 'services', $e->getMessage());
            return ['success' => false, 'error' => 'Could not list the provisioner\'s services: '
                . Text::sentence($e->getMessage())];
        }
        $accounts = [];
        foreach ($items as $service) {
            $desired = is_array($service['desired'] ?? null) ? $service['desired'] : [];
            $observed = is_array($service['observed'] ?? null) ? $service['observed'] : [];
            $product = is_array($desired['product'] ?? null) ? $desired['product'] : [];
            if (!in_array($desired['status'] ?? '', ['active', 'suspended'], true)) {
                continue;            // terminated: nothing to import
            }
            $created = '';
            if (!empty($service['created_at'])) {
                try {
                    $created = (new \DateTimeImmutable((string) $service['created_at']))->format('Y-m-d H:i:s');
                } catch (\Exception $e) {
                }
            }
            $domain = self::unicodeDomain((string) ($service['domain'] ?? ''));
            $accounts[] = [
                'email' => (string) ($service['client_email'] ?? ''),
                'username' => (string) ($service['username'] ?? ''),
                'domain' => $domain,
                'uniqueIdentifier' => $domain,
                'product' => (string) ($product['billing_product_id'] ?? ''),
                'primaryip' => '',
                'created' => $created,
                'status' => self::status((string) ($desired['status'] ?? ''), (string) ($observed['status'] ?? '')),
            ];
        }
        return ['success' => true, 'accounts' => $accounts];
    }

    /** A punycode domain as WHMCS shows it (Unicode), when intl is there. */
    public static function unicodeDomain(string $domain): string
    {
        if (!str_contains($domain, 'xn--') || !function_exists('idn_to_utf8')) {
            return $domain;
        }
        $unicode = idn_to_utf8($domain, IDNA_NONTRANSITIONAL_TO_UNICODE, INTL_IDNA_VARIANT_UTS46);
        return is_string($unicode) && $unicode !== '' ? $unicode : $domain;
    }

    private static function status(string $desired, string $observed): string
    {
        $names = ['active' => 'ACTIVE', 'suspended' => 'SUSPENDED', 'terminated' => 'TERMINATED', 'pending' => 'PENDING'];
        $key = $desired === 'active' && $observed === 'pending' ? 'pending' : $desired;
        $fallback = ['active' => 'Active', 'suspended' => 'Suspended', 'terminated' => 'Terminated',
            'pending' => 'Pending'][$key] ?? 'Active';
        $constant = 'WHMCS\\Service\\Status::' . ($names[$key] ?? 'ACTIVE');
        return defined($constant) ? (string) constant($constant) : $fallback;
    }
}
