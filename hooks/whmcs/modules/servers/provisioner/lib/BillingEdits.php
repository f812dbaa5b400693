<?php
/**
 * Billing edits that change no lifecycle state but that the provisioner must know
 * (hooks.php): a client's profile (ClientEdit) and an admin's edit of a service
 * (AdminServiceEdit: domain, due date, billing cycle, username, "Override Auto-Suspend" and
 * "Suspend Until") each become a service.update per live service of the module.
 */

namespace WHMCS\Module\Server\Provisioner;

final class BillingEdits
{
    /** @return array<string, string> service id => what happened */
    public static function clientEdited(int $clientId): array
    {
        $out = [];
        foreach (WhmcsData::liveServicesOf($clientId) as $service) {
            $out[(string) $service->id] = self::send((string) $service->id, 'client profile edited');
        }
        return $out;
    }

    public static function serviceEdited(string $serviceId): ?string
    {
        $row = WhmcsData::service($serviceId);
        if ($row === null || !in_array((int) $row->packageid, WhmcsData::productIds(), true)
            || !in_array((string) $row->domainstatus, ['Active', 'Suspended'], true)) {
            return null;             // not this module's, or nothing live to update
        }
        return self::send($serviceId, 'service edited by an admin');
    }

    private static function send(string $serviceId, string $why): string
    {
        $params = WhmcsData::serviceParams($serviceId);
        if ($params === null) {
            return 'no module parameters';
        }
        $result = Commands::update($params, new ModuleLog([(string) ($params['password'] ?? '')]));
        WhmcsData::activity(sprintf('provisioner: %s, service #%s: %s %s', $why, $serviceId,
            $result['ok'] ? 'update sent.' : 'update not applied:', $result['ok'] ? $result['message'] : $result['message']));
        return $result['message'];
    }
}
