<?php
/**
 * Checks an upgrade or downgrade before the customer pays (hooks.php,
 * ShoppingCartValidateUpgrade): the service.change_package it would send goes to the
 * provisioner's POST /hooks/v1/events/validate, which judges it as the real event would
 * (options in range, the new package fits current usage) without storing anything. A
 * refusal is shown at checkout, so no invoice is raised for a change that would fail.
 */

namespace WHMCS\Module\Server\Provisioner;

use WHMCS\Database\Capsule;

final class Checkout
{
    /** seconds the customer's page waits for the answer */
    public const TIMEOUT = 8;

    /**
     * @param array<int|string, mixed> $requestOptions configoption[<id>] => sub-option id or quantity,
     *                                                 as the upgrade form posts them
     * @return list<string> messages for the customer; empty when the change may go ahead
     */
    public static function validateUpgrade(string $serviceId, ?int $newProductId, array $requestOptions): array
    {
        $params = WhmcsData::serviceParams($serviceId);
        if ($params === null || (string) ($params['moduletype'] ?? WhmcsData::MODULE) !== WhmcsData::MODULE) {
            return [];
        }
        if ($newProductId !== null && $newProductId > 0) {
            $params['pid'] = $newProductId;
            $params['packageid'] = $newProductId;
            $target = Capsule::table('tblproducts')->where('id', $newProductId)->first();
            if ($target) {
                $target = (object) (array) $target;
                if ((string) ($target->servertype ?? '') !== WhmcsData::MODULE) {
                    return [];       // moving to another module's product: not ours to judge
                }
                $params['configoption2'] = (string) ($target->configoption2 ?? '');
            }
        }
        $params['configoptions'] = array_merge(is_array($params['configoptions'] ?? null) ? $params['configoptions'] : [],
            self::options($requestOptions));
        $log = new ModuleLog([(string) ($params['password'] ?? '')]);
        try {
            $connection = Connection::fromParams($params, $log);
            $event = EventBuilder::build('ChangePackage', $params);
        } catch (ConfigError $e) {
            $log->call('ValidateUpgrade', 'not sent', $e->getMessage());
            return [];               // a set-up problem is the admin's: ChangePackage reports it
        }
        $body = Json::encode(EventBuilder::stamped($event, EventBuilder::now()));
        $result = $connection->validateEvent('ValidateUpgrade', $body,
            'msg_whmcs_' . preg_replace('/[^A-Za-z0-9]/', '', $serviceId) . '_validate_' . bin2hex(random_bytes(8)),
            self::TIMEOUT);
        if ($result->status === 200) {
            return [];
        }
        if ($result->status === 422 || $result->status === 409) {
            return [Lang::get('provisioner_downgrade_refused', $params, Text::sentence($result->errorMessage()))];
        }
        // The provisioner could not judge (down, or a server-side problem): the change is
        // checked again by ChangePackage after payment, so checkout is not blocked for it.
        return [];
    }

    /**
     * configoption[<id>] => value from the upgrade form, as the names and values WHMCS
     * passes to modules: "name|Label" -> "name"; a dropdown's sub-option id -> its name; a
     * quantity or yes/no -> the number.
     *
     * @return array<string, int|string>
     */
    public static function options(array $requestOptions): array
    {
        $out = [];
        foreach ($requestOptions as $configId => $value) {
            $option = Capsule::table('tblproductconfigoptions')->where('id', (int) $configId)->first();
            if (!$option) {
                continue;
            }
            $option = (object) (array) $option;
            $name = explode('|', (string) $option->optionname, 2)[0];
            $type = (int) ($option->optiontype ?? 0);
            if ($type === 3 || $type === 4) {
                $out[$name] = (int) (is_array($value) ? ($value['qty'] ?? 0) : $value);
                continue;
            }
            $sub = Capsule::table('tblproductconfigoptionssub')->where('id', (int) $value)->first();
            if ($sub) {
                $subName = explode('|', (string) ((object) (array) $sub)->optionname, 2)[0];
                $out[$name] = preg_match('/^-?\d{1,15}$/', $subName) ? (int) $subName : $subName;
            }
        }
        return $out;
    }
}
