<?php
/**
 * provisioner — WHMCS server (provisioning) module.
 *
 * Sends every lifecycle command as a signed event to the provisioner (which makes the
 * e-mail upstream match it) and shows its state to admins and customers. Install into
 * modules/servers/provisioner/ and see hooks/whmcs/README.md.
 *
 * Server settings: Hostname = the provisioner's URL, Password = a webhook secret
 * (whsec_...), Access Hash = an admin API key. Needs PHP 8.1+ with the curl extension.
 */

if (!defined('WHMCS')) {
    die('This file cannot be accessed directly');
}

require_once __DIR__ . '/lib/ModuleLog.php';
require_once __DIR__ . '/lib/Connection.php';
require_once __DIR__ . '/lib/EventBuilder.php';
require_once __DIR__ . '/lib/Store.php';
require_once __DIR__ . '/lib/Commands.php';
require_once __DIR__ . '/lib/Panels.php';
require_once __DIR__ . '/lib/Sync.php';

use WHMCS\Module\Server\Provisioner\Commands;
use WHMCS\Module\Server\Provisioner\Panels;
use WHMCS\Module\Server\Provisioner\Sync;

function provisioner_MetaData()
{
    return [
        'DisplayName' => 'Provisioner (e-mail hosting)',
        'APIVersion' => '1.1',
        'RequiresServer' => true,
        'DefaultNonSSLPort' => '80',
        'DefaultSSLPort' => '443',
        'ServiceSingleSignOnLabel' => 'Manage mailboxes',
        'AdminSingleSignOnLabel' => 'Manage mailboxes as the customer',
    ];
}

/** Module Settings of a product: configoption1 and configoption2. Neither is required. */
function provisioner_ConfigOptions()
{
    return [
        'Wait seconds' => [
            'Type' => 'text',
            'Size' => '3',
            'Default' => (string) Commands::DEFAULT_WAIT,
            'Description' => 'How long each command waits for the provider (0-30 s). A job still running then '
                . 'is reported as queued; Retry in the Module Queue shows its outcome.',
        ],
        'Provisioner product id' => [
            'Type' => 'text',
            'Size' => '10',
            'Default' => '',
            'Description' => 'Leave empty to send this product\'s WHMCS id; it must be listed in billing_product_ids '
                . 'of a product config at the provisioner.',
        ],
    ];
}

function provisioner_TestConnection(array $params)
{
    try {
        return Panels::testConnection($params);
    } catch (\Throwable $e) {
        return ['success' => false, 'error' => 'Test failed: ' . $e->getMessage()];
    }
}

/** One lifecycle command; any unexpected error is a result, never an exception in WHMCS. */
function provisioner_run_command(string $function, array $params): string
{
    try {
        return Commands::run($function, $params);
    } catch (\Throwable $e) {
        if (function_exists('logModuleCall')) {
            logModuleCall('provisioner', $function, '', get_class($e) . ': ' . $e->getMessage(), '', []);
        }
        return 'The module failed before it could send the request: ' . $e->getMessage();
    }
}

function provisioner_CreateAccount(array $params)
{
    return provisioner_run_command('CreateAccount', $params);
}

function provisioner_SuspendAccount(array $params)
{
    return provisioner_run_command('SuspendAccount', $params);
}

function provisioner_UnsuspendAccount(array $params)
{
    return provisioner_run_command('UnsuspendAccount', $params);
}

function provisioner_TerminateAccount(array $params)
{
    return provisioner_run_command('TerminateAccount', $params);
}

function provisioner_ChangePackage(array $params)
{
    return provisioner_run_command('ChangePackage', $params);
}

function provisioner_ChangePassword(array $params)
{
    return provisioner_run_command('ChangePassword', $params);
}

function provisioner_Renew(array $params)
{
    return provisioner_run_command('Renew', $params);
}

function provisioner_ServiceSingleSignOn(array $params)
{
    try {
        return Panels::singleSignOn('ServiceSingleSignOn', $params);
    } catch (\Throwable $e) {
        return ['success' => false, 'errorMsg' => $e->getMessage()];
    }
}

function provisioner_AdminSingleSignOn(array $params)
{
    try {
        return Panels::singleSignOn('AdminSingleSignOn', $params);
    } catch (\Throwable $e) {
        return ['success' => false, 'errorMsg' => $e->getMessage()];
    }
}

function provisioner_ClientArea(array $params)
{
    try {
        return Panels::clientArea($params);
    } catch (\Throwable $e) {
        return [
            'tabOverviewReplacementTemplate' => 'templates/clientarea.tpl',
            'templateVariables' => ['provisionerError' => 'Your mailbox details are not available right now.',
                'provisionerLimits' => [], 'provisionerCanManage' => false],
        ];
    }
}

function provisioner_AdminServicesTabFields(array $params)
{
    try {
        return Panels::adminTab($params);
    } catch (\Throwable $e) {
        return ['Provisioner' => htmlspecialchars('The module failed: ' . $e->getMessage())];
    }
}

function provisioner_UsageUpdate(array $params)
{
    try {
        return Sync::usageUpdate($params);
    } catch (\Throwable $e) {
        return 'Usage update failed: ' . $e->getMessage();
    }
}

function provisioner_ListAccounts(array $params)
{
    try {
        return Sync::listAccounts($params);
    } catch (\Throwable $e) {
        return ['success' => false, 'error' => $e->getMessage()];
    }
}
