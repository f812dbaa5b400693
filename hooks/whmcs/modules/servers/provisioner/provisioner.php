<?php
/**
 * provisioner — WHMCS server (provisioning) module.
 *
 * Sends every lifecycle command as a signed event to the provisioner (which makes the
 * e-mail upstream match it) and shows its state to admins and customers. Install into
 * modules/servers/provisioner/ and see hooks/whmcs/README.md.
 *
 * Server settings: Hostname = the provisioner's URL, Password = a webhook secret of this
 * WHMCS's billing source (whsec_...), Access Hash = an admin API key scoped to it, Username =
 * the source's callback secret (whsec_..., for callback.php). Written for WHMCS 8.6 and
 * later (PHP 8.1+, with the curl extension; intl for internationalised domains).
 */

if (!defined('WHMCS')) {
    die('This file cannot be accessed directly');
}

require_once __DIR__ . '/lib/bootstrap.php';

use WHMCS\Module\Server\Provisioner\Commands;
use WHMCS\Module\Server\Provisioner\MetricsProvider;
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
        'AdminSingleSignOnLabel' => 'Open the operator console',
        // Server sync and usage metrics match services by domain; the billing product id
        // the events carry is "Provisioner product id" (configoption2).
        'ListAccountsUniqueIdentifierDisplayName' => 'Domain',
        'ListAccountsUniqueIdentifierField' => 'domain',
        'ListAccountsProductField' => 'configoption2',
    ];
}

/** Module Settings of a product: configoption1 to configoption3. None is required. */
function provisioner_ConfigOptions()
{
    return [
        'Wait seconds' => [
            'Type' => 'text',
            'Size' => '3',
            'Default' => (string) Commands::DEFAULT_WAIT,
            'Description' => 'How long a command waits for the provider (0-25 s; every command, retries '
                . 'included, ends within 30 s). A job still running then finishes in the background and WHMCS '
                . 'hears its outcome by callback or at the next cron run.',
        ],
        'Provisioner product id' => [
            'Type' => 'text',
            'Size' => '10',
            'Default' => '',
            'Description' => 'Leave empty to send this product\'s WHMCS id; it must be listed in billing_product_ids '
                . 'of a product config at the provisioner.',
        ],
        'Create configurable options' => [
            'Type' => 'yesno',
            'Description' => 'Tick and save: creates or updates this product\'s configurable options from the '
                . 'provisioner\'s product definition (the Activity Log says what was done).',
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
        $sent = Commands::sentWebhookId();
        return $sent === null
            ? 'The module failed before it could send the request: ' . $e->getMessage()
            : sprintf('The module failed after sending the request (webhook-id %s): %s. Run the command again to '
                . 'see the provisioner\'s answer.', $sent, $e->getMessage());
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

/** The server list's sign-on: the provisioner's operator console, as the server's API key. */
function provisioner_AdminSingleSignOn(array $params)
{
    try {
        return Panels::consoleSignOn($params);
    } catch (\Throwable $e) {
        return ['success' => false, 'errorMsg' => $e->getMessage()];
    }
}

function provisioner_ClientArea(array $params)
{
    try {
        return Panels::clientArea($params);
    } catch (\Throwable $e) {
        $strings = \WHMCS\Module\Server\Provisioner\Lang::strings(
            \WHMCS\Module\Server\Provisioner\Lang::language($params));
        return [
            'tabOverviewModuleOutputTemplate' => 'templates/clientarea.tpl',
            'templateVariables' => ['provisionerLang' => $strings, 'provisionerNotice' => $strings['provisioner_unavailable'],
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

/** Usage billing (WHMCS 7.9+): mailboxes, enhanced mailboxes, aliases, lists and storage per service. */
function provisioner_MetricProvider(array $params)
{
    require_once __DIR__ . '/lib/MetricsProvider.php';
    return new MetricsProvider($params);
}
