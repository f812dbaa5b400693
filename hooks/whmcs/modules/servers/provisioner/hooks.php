<?php
/**
 * provisioner — WHMCS hooks (WHMCS loads a provisioning module's hooks.php by itself).
 *
 *   AfterCronJob                  outcomes whose callback never came, billing edits not yet delivered
 *   ClientEdit, AdminServiceEdit  billing edits as service.update
 *   ShoppingCartValidateUpgrade   an upgrade/downgrade checked at checkout (WHMCS 9.0+)
 *   ClientAreaPrimarySidebar      "Manage mailboxes" on the service's page
 *   AdminProductConfigFieldsSave  "Create configurable options" from the product's Module Settings
 *
 * A hook never breaks the WHMCS page or cron it runs in: failures go to the module log.
 */

if (!defined('WHMCS')) {
    die('This file cannot be accessed directly');
}

require_once __DIR__ . '/lib/bootstrap.php';

use WHMCS\Module\Server\Provisioner\BillingEdits;
use WHMCS\Module\Server\Provisioner\Checkout;
use WHMCS\Module\Server\Provisioner\Options;
use WHMCS\Module\Server\Provisioner\Outcomes;
use WHMCS\Module\Server\Provisioner\Panels;
use WHMCS\Module\Server\Provisioner\WhmcsData;

function provisioner_hook_guard(string $hook, callable $run, $fallback = null)
{
    try {
        return $run();
    } catch (\Throwable $e) {
        if (function_exists('logModuleCall')) {
            logModuleCall('provisioner', $hook, '', get_class($e) . ': ' . $e->getMessage(), '', []);
        }
        return $fallback;
    }
}

add_hook('AfterCronJob', 1, function () {
    provisioner_hook_guard('AfterCronJob', static fn () => Outcomes::catchUp());
});

add_hook('ClientEdit', 1, function (array $vars) {
    provisioner_hook_guard('ClientEdit', static fn () => BillingEdits::clientEdited((int) ($vars['userid'] ?? 0)));
});

add_hook('AdminServiceEdit', 1, function (array $vars) {
    provisioner_hook_guard('AdminServiceEdit',
        static fn () => BillingEdits::serviceEdited((string) ($vars['serviceid'] ?? '')));
});

add_hook('ShoppingCartValidateUpgrade', 1, function (array $vars) {
    $options = is_array($_POST['configoption'] ?? null) ? $_POST['configoption'] : [];
    return provisioner_hook_guard('ShoppingCartValidateUpgrade', static fn () => Checkout::validateUpgrade(
        (string) ($vars['id'] ?? ''), isset($vars['pid']) ? (int) $vars['pid'] : null, $options), []);
});

add_hook('ClientAreaPrimarySidebar', 1, function ($sidebar) {
    provisioner_hook_guard('ClientAreaPrimarySidebar', static fn () => Panels::sidebar($sidebar));
});

add_hook('AdminProductConfigFieldsSave', 1, function (array $vars) {
    return provisioner_hook_guard('AdminProductConfigFieldsSave', static function () use ($vars) {
        $pid = (int) ($vars['pid'] ?? 0);
        $asked = $_POST['packageconfigoption'][3] ?? null;
        if ($pid <= 0 || !in_array(strtolower((string) $asked), ['on', '1', 'yes', 'true'], true)) {
            return null;
        }
        $result = Options::load($pid);
        // An action, not a setting: unticked again for the next save.
        \WHMCS\Database\Capsule::table('tblproducts')->where('id', $pid)->update(['configoption3' => '']);
        if (!$result['ok']) {
            WhmcsData::activity('provisioner: configurable options not created: ' . $result['message']);
        }
        return $result;
    });
});
