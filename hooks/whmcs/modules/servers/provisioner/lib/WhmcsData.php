<?php
/**
 * What the module reads from and adds to WHMCS outside a module call (callbacks, the cron
 * catch-up, hooks): the provisioner servers, a service's row and module parameters, a
 * product's welcome e-mail, to-dos and activity log entries.
 */

namespace WHMCS\Module\Server\Provisioner;

use WHMCS\Database\Capsule;

final class WhmcsData
{
    public const MODULE = 'provisioner';

    /** @return list<array<string, mixed>> the server fields of every enabled provisioner server, as $params has them */
    public static function servers(): array
    {
        $out = [];
        foreach (Capsule::table('tblservers')->where('type', self::MODULE)->get() as $row) {
            $row = (object) (array) $row;
            if (!empty($row->disabled)) {
                continue;
            }
            $out[] = self::serverFields($row);
        }
        return $out;
    }

    /** @return array<string, mixed>|null */
    public static function server(int $serverId): ?array
    {
        $row = Capsule::table('tblservers')->where('id', $serverId)->first();
        if (!$row) {
            return null;
        }
        $row = (object) (array) $row;
        return (string) ($row->type ?? '') === self::MODULE ? self::serverFields($row) : null;
    }

    private static function serverFields(object $row): array
    {
        $password = (string) ($row->password ?? '');
        if ($password !== '' && function_exists('decrypt')) {
            $password = (string) decrypt($password);        // WHMCS stores it encrypted
        }
        return [
            'serverid' => (int) $row->id,
            'serverhostname' => (string) ($row->hostname ?? ''),
            'serverip' => (string) ($row->ipaddress ?? ''),
            'serverusername' => (string) ($row->username ?? ''),
            'serverpassword' => $password,
            'serveraccesshash' => (string) ($row->accesshash ?? ''),
            'serversecure' => (string) ($row->secure ?? '') === 'on',
            'serverport' => (string) ($row->port ?? ''),
        ];
    }

    /** The service's row in tblhosting, or null. */
    public static function service(string $serviceId): ?object
    {
        if (!preg_match('/^\d+$/', $serviceId)) {
            return null;
        }
        $row = Capsule::table('tblhosting')->where('id', (int) $serviceId)->first();
        return $row ? (object) (array) $row : null;
    }

    /** The module parameters WHMCS would pass for the service (its own builder), or null. */
    public static function serviceParams(string $serviceId): ?array
    {
        if (!preg_match('/^\d+$/', $serviceId) || !class_exists('\WHMCS\Module\Server')) {
            return null;
        }
        $server = new \WHMCS\Module\Server();
        if (!$server->loadByServiceID((int) $serviceId)) {
            return null;
        }
        $params = $server->buildParams();
        return is_array($params) ? $params : null;
    }

    /** @return list<int> the WHMCS product ids provisioned by this module */
    public static function productIds(): array
    {
        $ids = [];
        foreach (Capsule::table('tblproducts')->where('servertype', self::MODULE)->get() as $row) {
            $ids[] = (int) ((object) (array) $row)->id;
        }
        return $ids;
    }

    /** @return list<object> the client's services of this module that are live (Active or Suspended) */
    public static function liveServicesOf(int $clientId): array
    {
        $products = self::productIds();
        $out = [];
        foreach (Capsule::table('tblhosting')->where('userid', $clientId)->get() as $row) {
            $row = (object) (array) $row;
            if (in_array((int) $row->packageid, $products, true)
                && in_array((string) $row->domainstatus, ['Active', 'Suspended'], true)) {
                $out[] = $row;
            }
        }
        return $out;
    }

    /** The name of the product's welcome e-mail template, or null when it sends none. */
    public static function welcomeTemplate(int $productId): ?string
    {
        $product = Capsule::table('tblproducts')->where('id', $productId)->first();
        $templateId = $product ? (int) (((object) (array) $product)->welcomeemail ?? 0) : 0;
        if ($templateId <= 0) {
            return null;
        }
        $template = Capsule::table('tblemailtemplates')->where('id', $templateId)->first();
        $name = $template ? (string) (((object) (array) $template)->name ?? '') : '';
        return $name !== '' ? $name : null;
    }

    /** A to-do for the admins (Utilities > To-Do List): WHMCS has no local API command for one. */
    public static function addTodo(string $title, string $description): void
    {
        Capsule::table('tbltodolist')->insert([
            'date' => gmdate('Y-m-d'), 'title' => Text::cut($title, 250), 'description' => $description,
            'admin' => 0, 'status' => 'New', 'duedate' => gmdate('Y-m-d'),
        ]);
    }

    public static function activity(string $message): void
    {
        if (function_exists('logActivity')) {
            try {
                logActivity($message);
            } catch (\Throwable $e) {
            }
        }
    }

    /** @return array<string, mixed> localAPI's answer; an error answer when it is missing or throws */
    public static function localApi(string $command, array $values, ModuleLog $log): array
    {
        if (!function_exists('localAPI')) {
            return ['result' => 'error', 'message' => 'the local API is not available'];
        }
        try {
            $answer = localAPI($command, $values);
        } catch (\Throwable $e) {
            $answer = ['result' => 'error', 'message' => $e->getMessage()];
        }
        $answer = is_array($answer) ? $answer : ['result' => 'error', 'message' => 'no answer'];
        $log->call('localAPI ' . $command, $values, $answer);
        return $answer;
    }
}
