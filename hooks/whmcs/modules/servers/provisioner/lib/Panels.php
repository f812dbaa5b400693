<?php
/**
 * What admins and customers see: single sign-on, the admin's service tab, the client area,
 * and the server's Test Connection.
 */

namespace WHMCS\Module\Server\Provisioner;

final class Panels
{
    /** Counted limits first, in this order, with their labels; others follow by name. */
    private const LABELS = [
        'mailboxes' => 'Mailboxes',
        'enhanced_mailboxes' => 'Enhanced mailboxes',
        'light_mailboxes' => 'Light mailboxes',
        'standard_mailboxes' => 'Standard mailboxes',
        'premium_mailboxes' => 'Premium mailboxes',
        'aliases' => 'Aliases',
        'distribution_lists' => 'Distribution lists',
        'mailing_lists' => 'Mailing lists',
        'relay_messages' => 'Messages',
        'relay_max_domains' => 'Sender domains',
    ];

    // --- single sign-on -----------------------------------------------------------------------

    /**
     * POST /api/v1/services/{id}/sso -> WHMCS's ['success', 'redirectTo'] or ['success' => false, 'errorMsg'].
     *
     * WHMCS calls ServiceSingleSignOn from the client area and from the admin's service page
     * (ADMINAREA is defined there): admins get the cause, customers a sentence for them (the
     * cause is in the module log).
     */
    public static function singleSignOn(string $function, array $params): array
    {
        $log = new ModuleLog();
        $admin = defined('ADMINAREA');
        try {
            $connection = Connection::fromParams($params, $log);
        } catch (ConfigError $e) {
            $log->call($function, 'not sent', $e->getMessage());
            return ['success' => false, 'errorMsg' => $admin ? $e->getMessage()
                : Lang::get('provisioner_sso_unavailable', $params)];
        }
        $serviceId = (string) ($params['serviceid'] ?? '');
        $result = $connection->api($function, 'POST', '/api/v1/services/' . rawurlencode($serviceId) . '/sso');
        $url = is_array($result->json) ? (string) ($result->json['url'] ?? '') : '';
        if (($result->status === 200 || $result->status === 201) && $url !== '') {
            if (!preg_match('~^https?://~i', $url)) {
                $url = $connection->url('/' . ltrim($url, '/'));  // a path: relative to the provisioner
            }
            return ['success' => true, 'redirectTo' => $url];
        }
        if ($result->errorCode() === 'service_not_found') {
            return ['success' => false, 'errorMsg' => $admin
                ? 'This service is not set up at the provider yet: run Create first.'
                : Lang::get('provisioner_sso_not_ready', $params)];
        }
        if (!$admin) {
            return ['success' => false, 'errorMsg' => Lang::get('provisioner_sso_unavailable', $params)];
        }
        if ($result->networkError()) {
            $message = 'The provisioner is not reachable right now (' . $result->error . ').';
        } elseif ($result->status === 404 || $result->status === 405) {
            $message = 'The provisioner does not offer single sign-on (POST /api/v1/services/{id}/sso answered HTTP '
                . $result->status . '): update it.';
        } elseif ($result->status === 401 || $result->status === 403) {
            $message = 'The provisioner refused the server\'s Access Hash: ' . Text::sentence($result->errorMessage())
                . ' Single sign-on needs an API key with the admin scope.';
        } else {
            $message = Text::sentence($result->errorMessage()) ?: 'Single sign-on failed (HTTP ' . $result->status . ').';
        }
        return ['success' => false, 'errorMsg' => $message];
    }

    /**
     * POST /api/v1/console/sso -> WHMCS's AdminSingleSignOn answer: a single-use link into the
     * provisioner's operator console, signed in as the server's API key (its scope and billing
     * source). Only admins reach it (the Servers list), so they are told the cause of a refusal.
     */
    public static function consoleSignOn(array $params): array
    {
        $log = new ModuleLog();
        try {
            $connection = Connection::fromParams($params, $log);
        } catch (ConfigError $e) {
            $log->call('AdminSingleSignOn', 'not sent', $e->getMessage());
            return ['success' => false, 'errorMsg' => $e->getMessage()];
        }
        $result = $connection->api('AdminSingleSignOn', 'POST', '/api/v1/console/sso');
        $url = is_array($result->json) ? (string) ($result->json['url'] ?? '') : '';
        if ($result->status === 200 && preg_match('~^https?://~i', $url)) {
            return ['success' => true, 'redirectTo' => $url];
        }
        if ($result->networkError()) {
            $message = 'The provisioner is not reachable right now (' . $result->error . ').';
        } elseif ($result->status === 404 || $result->status === 405) {
            $message = 'The provisioner has no operator console (POST /api/v1/console/sso answered HTTP '
                . $result->status . '): update it.';
        } elseif ($result->status === 401 || $result->status === 403) {
            $message = 'The provisioner refused the server\'s Access Hash: ' . Text::sentence($result->errorMessage())
                . ' Opening the console needs an API key with the admin scope.';
        } else {
            $message = Text::sentence($result->errorMessage()) ?: 'Opening the console failed (HTTP ' . $result->status . ').';
        }
        return ['success' => false, 'errorMsg' => $message];
    }

    /**
     * "Manage mailboxes" in the service page's sidebar (hooks.php, ClientAreaPrimarySidebar):
     * the single sign-on link, for an Active service of this module.
     */
    public static function sidebar($sidebar): void
    {
        if (!is_object($sidebar) || !class_exists('Menu')) {
            return;
        }
        $service = \Menu::context('service');
        if (!is_object($service) || (string) ($service->domainstatus ?? '') !== 'Active'
            || !in_array((int) ($service->packageid ?? 0), WhmcsData::productIds(), true)) {
            return;
        }
        $client = \Menu::context('client');
        $panel = $sidebar->getChild('Service Details Actions') ?? $sidebar->getChild('Service Details Overview');
        if ($panel === null) {
            return;
        }
        $panel->addChild('provisioner-manage-mailboxes', [
            'label' => Lang::get('provisioner_manage', ['clientsdetails' => ['language' => (string) ($client->language ?? '')]]),
            'uri' => 'clientarea.php?action=productdetails&id=' . rawurlencode((string) $service->id) . '&dosinglesignon=1',
            'order' => 5,
        ]);
    }

    // --- the admin's service tab --------------------------------------------------------------

    /** @return array<string, string> label => HTML */
    public static function adminTab(array $params): array
    {
        $log = new ModuleLog();
        $serviceId = (string) ($params['serviceid'] ?? '');
        $fields = [];
        if (Store::available() && function_exists('decrypt')) {
            try {
                foreach (Store::takeSecrets($serviceId) as $name => $encrypted) {
                    $value = (string) decrypt($encrypted);
                    $log->addSecrets([$value]);
                    $fields['One-time ' . str_replace('_', ' ', $name)] = '<code>' . self::h($value) . '</code> '
                        . '<strong>Shown only now: copy it; the provider will not show it again.</strong>';
                }
            } catch (\Throwable $e) {
                $log->call('AdminServicesTabFields', 'one-time secrets', $e->getMessage());
            }
        }
        try {
            $connection = Connection::fromParams($params, $log);
        } catch (ConfigError $e) {
            return $fields + ['Provisioner' => self::h($e->getMessage())];
        }
        $result = $connection->api('AdminServicesTabFields', 'GET', '/api/v1/services/' . rawurlencode($serviceId));
        if ($result->status === 404 && $result->errorCode() === 'service_not_found') {
            return $fields + ['Provisioner' => 'Not known to the provisioner yet: run Create.'];
        }
        if ($result->status !== 200 || !is_array($result->json)) {
            return $fields + ['Provisioner' => self::h('Could not read the service from the provisioner at '
                    . $connection->url() . ' (' . $result->describe() . ').')];
        }
        $service = $result->json;
        $desired = is_array($service['desired'] ?? null) ? $service['desired'] : [];
        $observed = is_array($service['observed'] ?? null) ? $service['observed'] : [];
        $upstream = is_array($service['upstream'] ?? null) ? $service['upstream'] : [];

        $status = 'Billing wants <strong>' . self::h((string) ($desired['status'] ?? '?')) . '</strong>';
        if (!empty($desired['suspend_reason']) && ($desired['status'] ?? '') === 'suspended') {
            $status .= ' (' . self::h((string) $desired['suspend_reason']) . ')';
        }
        $status .= '; the provider has it <strong>' . self::h((string) ($observed['status'] ?? 'not yet converged'))
            . '</strong>';
        if (!empty($upstream['name'])) {
            $status .= ' at ' . self::h((string) $upstream['name'])
                . (!empty($upstream['upstream_id']) ? ' (account ' . self::h((string) $upstream['upstream_id']) . ')' : '');
        }
        if (!empty($observed['converged_at'])) {
            $status .= ', checked ' . self::h(self::when((string) $observed['converged_at']));
        }
        if (!empty($service['password_pending'])) {
            $status .= '; a new password is waiting to be applied';
        }
        $fields['Provider status'] = $status . '.';

        $rows = self::limitRows(is_array($desired['limits'] ?? null) ? $desired['limits'] : [],
            is_array($service['usage'] ?? null) ? $service['usage'] : []);
        $fields['Use / limits'] = $rows
            ? implode(' &middot; ', array_map(static fn ($r) => self::h($r['label'] . ' ' . $r['used'] . ' / ' . $r['limit']), $rows))
            : 'none reported yet';

        $jobs = is_array($service['jobs'] ?? null) ? $service['jobs'] : [];
        $last = $jobs[0] ?? null;
        if (is_array($last)) {
            $attempts = (int) ($last['attempts'] ?? 0);
            $fields['Last job'] = self::h(sprintf('%s: %s after %d attempt%s, %s (job %s)',
                (string) ($last['reason'] ?? $last['kind'] ?? 'job'), (string) ($last['state'] ?? '?'), $attempts,
                $attempts === 1 ? '' : 's', self::when((string) ($last['finished_at'] ?? $last['updated_at'] ?? '')),
                (string) ($last['id'] ?? '?')));
            $error = is_array($last['error'] ?? null) ? (string) ($last['error']['message'] ?? '') : '';
            $fields['Last job error'] = $error !== '' ? self::h(Text::sentence($error)) : 'none';
        } else {
            $fields['Last job'] = 'none';
        }
        return $fields;
    }

    // --- the client area ------------------------------------------------------------------------

    /**
     * The module's part of the client area's overview tab: WHMCS keeps its own product
     * details (status, dates, Upgrade/Downgrade, Renew, Cancel, configurable options,
     * custom fields, username, suspension reason) and shows this below them.
     */
    public static function clientArea(array $params): array
    {
        $log = new ModuleLog();
        $serviceId = (string) ($params['serviceid'] ?? '');
        $strings = Lang::strings(Lang::language($params));
        $whmcsStatus = (string) ($params['status'] ?? '');
        $vars = [
            'provisionerServiceId' => $serviceId,
            'provisionerLang' => $strings,
            'provisionerLimits' => [],
            'provisionerStorage' => null,
            'provisionerQuota' => null,
            'provisionerStatus' => '',
            'provisionerNotice' => '',
            'provisionerCanManage' => false,
            'provisionerSsoLink' => 'clientarea.php?action=productdetails&id=' . rawurlencode($serviceId)
                . '&dosinglesignon=1',
        ];
        $result = null;
        if ($whmcsStatus === 'Pending') {
            $vars['provisionerNotice'] = $strings['provisioner_pending'];
        } else {
            try {
                $connection = Connection::fromParams($params, $log);
                $result = $connection->api('ClientArea', 'GET', '/api/v1/services/' . rawurlencode($serviceId), null,
                    Connection::PAGE_TIMEOUT);
            } catch (ConfigError $e) {
                $log->call('ClientArea', 'not sent', $e->getMessage());
            }
            if ($result !== null && $result->status === 200 && is_array($result->json)) {
                $service = $result->json;
                $desired = is_array($service['desired'] ?? null) ? $service['desired'] : [];
                $limits = is_array($desired['limits'] ?? null) ? $desired['limits'] : [];
                $usage = is_array($service['usage'] ?? null) ? $service['usage'] : [];
                $vars['provisionerLimits'] = self::limitRows($limits, $usage, $strings);
                $vars['provisionerStorage'] = isset($usage['storage_mb']) && is_int($usage['storage_mb'])
                    ? sprintf($strings['provisioner_mb'], (string) $usage['storage_mb']) : null;
                $vars['provisionerQuota'] = isset($limits['mailbox_quota_gb']) && is_int($limits['mailbox_quota_gb'])
                    ? sprintf($strings['provisioner_gb'], (string) $limits['mailbox_quota_gb']) : null;
                $vars['provisionerStatus'] = (string) ($desired['status'] ?? '');
                $vars['provisionerCanManage'] = ($desired['status'] ?? '') === 'active';
                if (($desired['status'] ?? '') === 'suspended') {
                    $vars['provisionerNotice'] = $strings['provisioner_suspended'];
                }
            } elseif ($result !== null && $result->errorCode() === 'service_not_found') {
                $vars['provisionerNotice'] = $strings['provisioner_pending'];
            } else {
                $vars['provisionerNotice'] = $strings['provisioner_unavailable'];
            }
        }
        return [
            'tabOverviewModuleOutputTemplate' => 'templates/clientarea.tpl',
            'templateVariables' => $vars,
        ];
    }

    /** @return list<array{key: string, label: string, used: string, limit: string}> counted limits against use */
    public static function limitRows(array $limits, array $usage, ?array $strings = null): array
    {
        $keys = array_keys(self::LABELS);
        foreach ($limits as $key => $value) {
            if (!in_array($key, $keys, true)) {
                $keys[] = (string) $key;
            }
        }
        $rows = [];
        foreach ($keys as $key) {
            if (!array_key_exists($key, $limits) || !is_int($limits[$key]) || in_array($key, ['mailbox_quota_gb'], true)) {
                continue;
            }
            if (!isset(self::LABELS[$key]) && !array_key_exists($key, $usage)) {
                continue;            // a setting (months, a plan number), not something counted
            }
            $limit = $limits[$key];
            $used = $usage[$key] ?? null;
            $label = $strings['provisioner_label_' . $key] ?? self::LABELS[$key] ?? null;
            $rows[] = [
                'key' => (string) $key,
                'label' => $label ?? ucfirst(str_replace('_', ' ', (string) $key)),
                'used' => is_int($used) ? (string) $used : '-',
                'limit' => $limit < 0 ? ($strings['provisioner_unlimited'] ?? 'unlimited') : (string) $limit,
            ];
        }
        return $rows;
    }

    // --- Test Connection ------------------------------------------------------------------------

    /** Both credentials: the API key (an authenticated GET) and the webhook secret (a signed probe). */
    public static function testConnection(array $params): array
    {
        $log = new ModuleLog();
        try {
            $connection = Connection::fromParams($params, $log);
        } catch (ConfigError $e) {
            $log->call('TestConnection', 'not sent', $e->getMessage());
            return ['success' => false, 'error' => $e->getMessage()];
        }
        $callback = trim((string) ($params['serverusername'] ?? ''));
        if ($callback !== '' && Connection::secretKey($callback) === null) {
            return ['success' => false, 'error' => 'The server\'s Username is not a callback secret: leave it empty, '
                . 'or enter the callback_secret (whsec_...) of this WHMCS\'s billing source at the provisioner, so '
                . 'that callback.php accepts its callbacks.'];
        }
        $health = $connection->anonymous('TestConnection', '/healthz');
        if ($health->status !== 200) {
            return ['success' => false, 'error' => sprintf('The provisioner at %s is not reachable (%s). Check the '
                . 'server\'s Hostname, SSL setting and Port.', $connection->url(), $health->describe())];
        }
        if (!$connection->hasApiKey()) {
            return ['success' => false, 'error' => 'The server has no Access Hash: enter an admin API key of the '
                . 'provisioner (provisioner api-key create whmcs --scope admin).'];
        }
        $api = $connection->api('TestConnection', 'GET', '/api/v1/upstreams?per_page=1');
        if ($api->status === 401) {
            return ['success' => false, 'error' => 'The provisioner refused the server\'s Access Hash: '
                . Text::sentence($api->errorMessage()) . ' Enter an admin API key (provisioner api-key create whmcs '
                . '--scope admin).'];
        }
        if ($api->status !== 200) {
            return ['success' => false, 'error' => 'The admin API answered ' . $api->describe() . '.'];
        }
        // Scope: a read key may only GET, and single sign-on is a POST.
        $probeId = 'whmcs-connection-test-' . bin2hex(random_bytes(4));
        $scope = $connection->api('TestConnection', 'POST', '/api/v1/services/' . $probeId . '/sso');
        if ($scope->status === 403) {
            return ['success' => false, 'error' => 'The server\'s Access Hash is a read-only API key: '
                . 'single sign-on needs one with the admin scope (provisioner api-key create whmcs --scope admin).'];
        }
        // The webhook secret: an event for a service that cannot exist changes nothing and
        // must be refused as unknown (404), which proves the signature was accepted.
        $body = Json::encode(['type' => 'service.suspend', 'occurred_at' => EventBuilder::now(),
            'service' => ['id' => $probeId, 'product_id' => '0']]);
        $hook = $connection->sendEvent('TestConnection', $body, 'msg_whmcs_connection_test_' . bin2hex(random_bytes(8)),
            0, 1);
        if ($hook->status === 404 && $hook->errorCode() === 'service_not_found') {
            return ['success' => true, 'error' => ''];
        }
        if ($hook->status === 401 && $hook->errorCode() === 'stale_timestamp') {
            return ['success' => false, 'error' => 'The provisioner refused the signed request\'s timestamp: the clock of '
                . 'this WHMCS server is more than 5 minutes off the provisioner\'s. Fix the time (NTP).'];
        }
        if ($hook->status === 401) {
            return ['success' => false, 'error' => 'The provisioner refused the signature: the server\'s Password must '
                . 'be one of the provisioner\'s webhook secrets (PROVISIONER_WEBHOOK_SECRETS). ('
                . Text::sentence($hook->errorMessage()) . ')'];
        }
        return ['success' => false, 'error' => 'Unexpected answer to a signed test event: ' . $hook->describe() . '.'];
    }

    public static function h(string $text): string
    {
        return htmlspecialchars($text, ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');
    }

    private static function when(string $iso): string
    {
        if ($iso === '') {
            return 'not finished';
        }
        try {
            return (new \DateTimeImmutable($iso))->setTimezone(new \DateTimeZone('UTC'))->format('Y-m-d H:i') . ' UTC';
        } catch (\Exception $e) {
            return $iso;
        }
    }
}
