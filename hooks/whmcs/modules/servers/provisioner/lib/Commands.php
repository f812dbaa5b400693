<?php
/**
 * The lifecycle commands: CreateAccount, SuspendAccount, UnsuspendAccount, TerminateAccount,
 * ChangePackage, ChangePassword and Renew, each one signed event; and service.update for
 * billing edits (hooks.php).
 *
 * The webhook-id scheme
 * ---------------------
 * The provisioner treats a webhook-id as an idempotency key: the same id with the same
 * body returns the original job (and queues it again if it had failed); a new id is a new
 * event. WHMCS never retries by itself: a failed automated command lands in the Module
 * Queue, and its Retry button (or the admin pressing the button again) calls the same
 * module function again with the same $params. So:
 *
 *  - Every command computes a fingerprint: HMAC-SHA256 (keyed with the webhook secret, so
 *    the stored value says nothing about a password) over the event it would send, minus
 *    occurred_at. (Not over the provisioner's URL: fixing a wrong hostname and retrying
 *    is still the same command.)
 *  - Before sending, the module stores {service, server, action, fingerprint, webhook-id,
 *    occurred_at} in mod_provisioner_commands. The webhook-id is
 *    "msg_whmcs_<serviceid>_<action>_<16 random hex digits>": readable in both logs, and new
 *    for every new command.
 *  - A later call whose action and fingerprint match the service's newest stored command
 *    is a retry of it: it re-sends the stored webhook-id and occurred_at, so the body is
 *    byte-for-byte the same. The provisioner answers with the original job, queueing it
 *    again if it had failed.
 *  - Anything else (another action, other values, e.g. a different suspend reason or new
 *    configurable options) is a new command and gets a new webhook-id.
 *  - The row is removed when the job succeeded (or was skipped), and when the provisioner
 *    refused the request with a 4xx (it stored nothing under that id). It stays "open"
 *    after network errors, 5xx answers and failed jobs (a Retry sends it again), and
 *    "queued" while its job runs: its outcome then comes by callback (callback.php) or by
 *    the cron catch-up (hooks.php, AfterCronJob), see Outcomes.
 *  - Network errors and 5xx answers are sent again within the call (after 1 s and 2 s) with
 *    the same webhook-id and body, only the signature's timestamp new, inside one time
 *    budget (Connection::TIME_BUDGET, 30 s: a create may run inside the customer's checkout).
 *
 * What WHMCS is told while a job still runs (HTTP 202)
 * ---------------------------------------------------
 * To WHMCS anything but "success" is a failure it acts on. The provisioner has stored the
 * command and will converge the platform to it, so:
 *  - CreateAccount: not "success". WHMCS keeps the service Pending and sends no welcome
 *    e-mail while nothing exists at the provider; when the job succeeds, Outcomes makes it
 *    Active through WHMCS's own ModuleCreate and sends the welcome e-mail once.
 *  - Every other command: "success". The billing decision (suspend, unsuspend, terminate,
 *    renew, new package, new password) stands; WHMCS must not restore the old password or
 *    mail "Service Renewal Failed" for a job that is merely slow. A later failure opens a
 *    to-do for the admin.
 *  - ChangePassword even when its job failed: the provisioner keeps the new password and
 *    applies it at its next converge, so WHMCS keeps it too (the failure becomes a to-do).
 */

namespace WHMCS\Module\Server\Provisioner;

final class Json
{
    public static function encode($value): string
    {
        return json_encode($value, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_INVALID_UTF8_SUBSTITUTE
            | JSON_THROW_ON_ERROR);
    }
}

final class Text
{
    /** A message as a sentence: trimmed, ending with a full stop. */
    public static function sentence(string $message): string
    {
        $message = trim($message);
        if ($message === '') {
            return '';
        }
        return preg_match('/[.!?]$/', $message) ? $message : $message . '.';
    }

    /** At most $max characters (UTF-8 aware without mbstring). */
    public static function cut(string $value, int $max): string
    {
        if (strlen($value) <= $max) {
            return $value;
        }
        return preg_match('/^.{0,' . $max . '}/us', $value, $m) ? $m[0] : substr($value, 0, $max);
    }
}

final class Commands
{
    public const DEFAULT_WAIT = 20;
    public const MAX_WAIT = 25;

    /** @var array<string, string> service id => job id of a create known to have succeeded */
    private static array $confirmed = [];
    /** the webhook-id of the command this request has sent, if any (for error messages) */
    private static ?string $sent = null;

    /**
     * Outcomes calls WHMCS's ModuleCreate for a create whose job succeeded after WHMCS was
     * told it was still running: CreateAccount then answers "success" without sending.
     */
    public static function confirmCreate(string $serviceId, string $jobId): void
    {
        self::$confirmed[$serviceId] = $jobId;
    }

    public static function sentWebhookId(): ?string
    {
        return self::$sent;
    }

    public static function run(string $function, array $params): string
    {
        self::$sent = null;
        $log = new ModuleLog([(string) ($params['password'] ?? '')]);
        $confirmedId = (string) ($params['serviceid'] ?? '');
        if ($function === 'CreateAccount' && isset(self::$confirmed[$confirmedId])) {
            $jobId = self::$confirmed[$confirmedId];
            unset(self::$confirmed[$confirmedId]);
            $log->call($function, 'not sent: job ' . $jobId . ' at the provisioner already set this service up',
                'success');
            return 'success';
        }
        try {
            $connection = Connection::fromParams($params, $log);
            $event = EventBuilder::build($function, $params);
        } catch (ConfigError $e) {
            $log->call($function, 'not sent', $e->getMessage());
            return $e->getMessage();
        }
        $result = self::send($function, $params, $connection, $event, self::wait($params));
        return self::outcome($function, $params, $connection, $result, $event['service']['id']);
    }

    /**
     * A billing edit (service.update) of a service, sent without waiting for its job.
     *
     * @return array{ok: bool, message: string}
     */
    public static function update(array $params, ModuleLog $log): array
    {
        try {
            $connection = Connection::fromParams($params, $log);
            $event = EventBuilder::build('Update', $params);
        } catch (ConfigError $e) {
            $log->call('Update', 'not sent', $e->getMessage());
            return ['ok' => false, 'message' => $e->getMessage()];
        }
        $result = self::send('Update', $params, $connection, $event, 0);
        $job = is_array($result->json) ? ($result->json['job'] ?? null) : null;
        if (($result->status === 200 || $result->status === 202) && is_array($job)) {
            self::forget(self::$sent, $log);     // nothing in WHMCS waits on its outcome; failures come as to-dos
            return ['ok' => true, 'message' => sprintf('Sent to the provisioner (job %s).', (string) ($job['id'] ?? '?'))];
        }
        if ($result->retryable()) {
            // Kept "open": the cron catch-up sends it again.
            self::mark((string) self::$sent, Store::OPEN, null, $log);
            return ['ok' => false, 'message' => 'Not delivered yet (' . $result->describe() . '); the cron sends it '
                . 'again.'];
        }
        self::forget(self::$sent, $log);
        return ['ok' => false, 'message' => Text::sentence($result->errorMessage())
            ?: 'The provisioner refused the change (HTTP ' . $result->status . ').'];
    }

    /** The configured "Wait seconds" (configoption1): 0..25, default 20. */
    public static function wait(array $params): int
    {
        $value = trim((string) ($params['configoption1'] ?? ''));
        if ($value === '' || !preg_match('/^\d+$/', $value)) {
            return self::DEFAULT_WAIT;
        }
        return max(0, min(self::MAX_WAIT, (int) $value));
    }

    private static function send(string $function, array $params, Connection $connection, array $event,
                                 int $wait): HttpResult
    {
        $log = $connection->log();
        $serviceId = $event['service']['id'];
        $action = substr($event['type'], strlen('service.'));
        $fingerprint = hash_hmac('sha256', Json::encode($event), $connection->signingKey());
        [$webhookId, $occurredAt] = self::delivery($serviceId, (int) ($params['serverid'] ?? 0), $action,
            $fingerprint, $log);
        $body = Json::encode(EventBuilder::stamped($event, $occurredAt));
        self::$sent = $webhookId;
        return $connection->sendEvent($function, $body, $webhookId, $wait);
    }

    /** @return array{0: string, 1: string} the webhook-id and occurred_at to send */
    private static function delivery(string $serviceId, int $serverId, string $action, string $fingerprint,
                                     ModuleLog $log): array
    {
        $newId = 'msg_whmcs_' . preg_replace('/[^A-Za-z0-9]/', '', $serviceId) . '_' . $action . '_'
            . bin2hex(random_bytes(8));
        $now = EventBuilder::now();
        if (!Store::available()) {
            return [$newId, $now];
        }
        try {
            $latest = Store::latest($serviceId);
            if ($latest !== null && (string) $latest->action === $action
                && hash_equals((string) $latest->fingerprint, $fingerprint)) {
                Store::resending((string) $latest->webhook_id);
                return [(string) $latest->webhook_id, (string) $latest->occurred_at];
            }
            Store::remember($serviceId, $serverId, $action, $fingerprint, $newId, $now);
        } catch (\Throwable $e) {
            // Without its table the module still works; a retry is then a new event
            // (idempotent by state at the provisioner), not the same job again.
            $log->call('CommandStore', 'remember ' . $action . ' for service ' . $serviceId,
                get_class($e) . ': ' . $e->getMessage());
        }
        return [$newId, $now];
    }

    private static function forget(?string $webhookId, ModuleLog $log): void
    {
        if ($webhookId === null || !Store::available()) {
            return;
        }
        try {
            Store::forget($webhookId);
        } catch (\Throwable $e) {
            $log->call('CommandStore', 'forget ' . $webhookId, get_class($e) . ': ' . $e->getMessage());
        }
    }

    private static function mark(string $webhookId, string $state, ?string $jobId, ModuleLog $log): ?object
    {
        if (!Store::available()) {
            return null;
        }
        try {
            $before = Store::command($webhookId);
            Store::mark($webhookId, $state, $jobId);
            return $before;
        } catch (\Throwable $e) {
            $log->call('CommandStore', 'mark ' . $webhookId . ' ' . $state, get_class($e) . ': ' . $e->getMessage());
            return null;
        }
    }

    private static function outcome(string $function, array $params, Connection $connection, HttpResult $result,
                                    string $serviceId): string
    {
        $log = $connection->log();
        $webhookId = (string) self::$sent;
        $again = 'use Retry in the Module Queue (Utilities > Module Queue), or run the command again, to send it again';
        if ($result->retryable() || ($result->status > 0 && $result->status < 400
                && !is_array(is_array($result->json) ? ($result->json['job'] ?? null) : null))) {
            self::mark($webhookId, Store::OPEN, null, $log);       // a Retry sends it again
        }
        if ($result->networkError()) {
            return sprintf('No answer from the provisioner at %s after %d attempt(s): %s. The request is kept '
                . '(webhook-id %s): %s.', $connection->url(), $result->attempts, rtrim($result->error, '.'),
                $webhookId, $again);
        }
        if ($result->status >= 500 || $result->status === 429) {
            $message = Text::sentence($result->errorMessage());
            return sprintf('The provisioner answered HTTP %d after %d attempt(s)%s The request is kept '
                . '(webhook-id %s): %s.', $result->status, $result->attempts,
                $message !== '' ? ': ' . $message : '.', $webhookId, $again);
        }
        $job = is_array($result->json) ? ($result->json['job'] ?? null) : null;
        if (($result->status === 200 || $result->status === 202) && is_array($job)) {
            $jobId = (string) ($job['id'] ?? '?');
            $state = (string) ($job['state'] ?? '');
            $error = is_array($job['error'] ?? null) ? Text::sentence((string) ($job['error']['message'] ?? '')) : '';
            if ($state === 'succeeded' || $state === 'skipped') {
                $before = Store::available() ? self::commandRow($webhookId, $log) : null;
                if ($before !== null && (string) ($before->job_id ?? '') !== '') {
                    // A Retry saw the outcome of an earlier answered job before its callback
                    // did: WHMCS's own path now handles it, so the callback must not apply it
                    // a second time (claimed before the row goes, so no callback slips between).
                    Outcomes::claimQuietly($jobId, (int) ($job['attempts'] ?? 0), $serviceId, $state, 'retry', $log);
                }
                self::forget($webhookId, $log);
                $secrets = is_array($job['secrets'] ?? null) ? $job['secrets'] : [];
                if ($secrets) {
                    $problem = Secrets::deliver($serviceId, $secrets, $log);
                    if ($problem !== null) {
                        return $problem;
                    }
                }
                return 'success';
            }
            if ($state === 'failed') {
                $attempts = (int) ($job['attempts'] ?? 0);
                if ($function === 'ChangePassword') {
                    // The provisioner keeps the new password and applies it at its next
                    // converge: WHMCS keeps it too; the job.failed callback opens the to-do.
                    self::forget($webhookId, $log);
                    WhmcsData::activity(sprintf('provisioner: the new password of service #%s is not applied at the '
                        . 'provider yet (job %s failed: %s); the provisioner applies it at its next converge',
                        $serviceId, $jobId, rtrim($error ?: 'no reason given', '.')));
                    return 'success';
                }
                self::mark($webhookId, Store::OPEN, $jobId, $log);
                return ($error !== '' ? $error . ' ' : 'The provider could not complete the request. ')
                    . sprintf('(Job %s at the provisioner failed after %d attempt%s; once the cause is fixed, use '
                        . 'Retry in the Module Queue, or run the command again, to run the same job again.)',
                        $jobId, $attempts, $attempts === 1 ? '' : 's');
            }
            self::mark($webhookId, Store::QUEUED, $jobId, $log);
            if ($function === 'CreateAccount') {
                return sprintf('Not a failure: the provider is still setting this service up (job %s). WHMCS will '
                    . 'make it Active and send the welcome e-mail when it is ready; there is nothing to do now.',
                    $jobId) . ($error !== '' ? ' Last attempt: ' . $error : '');
            }
            WhmcsData::activity(sprintf('provisioner: %s of service #%s accepted; the provider is still working on it '
                . '(job %s). A failure would open a to-do.', $function, $serviceId, $jobId));
            return 'success';
        }
        if ($result->status < 400) {
            return sprintf('Unexpected answer from the provisioner (HTTP %d); the request is kept (webhook-id %s): %s.',
                $result->status, $webhookId, $again);
        }

        // 4xx: the provisioner stored nothing under this webhook-id; the next try is a new request.
        self::forget($webhookId, $log);
        $code = $result->errorCode();
        $message = Text::sentence($result->errorMessage()) ?: sprintf('The provisioner refused the request (HTTP %d).',
            $result->status);
        if ($result->status === 404 && $code === 'service_not_found' && $function === 'TerminateAccount') {
            // Never created there: nothing to terminate.
            return 'success';
        }
        if (($code === 'invalid_event' || $code === 'invalid_option') && $result->errorFields()) {
            $details = [];
            foreach ($result->errorFields() as $field => $problem) {
                $details[] = preg_replace('/^service\.(config_options|custom_fields)\./', '', $field)
                    . ': ' . rtrim($problem, '.');
            }
            $message .= ' (' . implode('; ', $details) . '.)';
        }
        $hints = [
            'invalid_signature' => 'Check that the server\'s Password is one of the webhook secrets of this WHMCS\'s '
                . 'billing source at the provisioner (billing.yaml, or PROVISIONER_WEBHOOK_SECRETS).',
            'stale_timestamp' => 'Check the clock of this WHMCS server (NTP): it must be within 5 minutes of the '
                . 'provisioner\'s.',
            'service_not_found' => 'Run Create for this service first.',
            'service_terminated' => 'Run Create to set it up again.',
            'unknown_product' => sprintf('Add %s to billing_product_ids of a product config at the provisioner, or set '
                . '"Provisioner product id" in this product\'s Module Settings.',
                json_encode((string) (trim((string) ($params['configoption2'] ?? '')) ?: ($params['pid'] ?? '')))),
            'idempotency_key_reused' => 'Run the command again to send it as a new request.',
            'client_details_missing' => 'Complete the client\'s profile (address, phone ...) and run the command '
                . 'again.',
            'fixed_limit_change' => 'Keep that option as it is, or terminate this service and order a new one.',
        ];
        return isset($hints[$code]) ? $message . ' ' . $hints[$code] : $message;
    }

    private static function commandRow(string $webhookId, ModuleLog $log): ?object
    {
        try {
            return Store::command($webhookId);
        } catch (\Throwable $e) {
            $log->call('CommandStore', 'read ' . $webhookId, get_class($e) . ': ' . $e->getMessage());
            return null;
        }
    }
}

/**
 * One-time credentials the provider generated (job.secrets, e.g. an SMTP relay password):
 * shown by the provisioner once, in the first answer that reports the finished job.
 *
 * A password (and a username) goes into the service's own fields through the local API
 * (UpdateClientProduct: WHMCS stores the password encrypted; the admin sees it on the
 * service page, the customer in the client area). Whatever cannot be saved so is kept
 * WHMCS-encrypted (encrypt()) in mod_provisioner_secrets and shown once on the admin's
 * service tab. It is never put into a command's result: WHMCS writes failed results into
 * the activity log and the Module Queue.
 */
final class Secrets
{
    /** @return string|null null when every secret was saved; else the admin's message */
    public static function deliver(string $serviceId, array $secrets, ModuleLog $log): ?string
    {
        $secrets = array_filter($secrets, static fn ($v) => is_string($v) && $v !== '');
        $log->addSecrets(array_values($secrets));
        $fields = [];
        foreach ($secrets as $name => $value) {
            $lower = strtolower((string) $name);
            if (str_contains($lower, 'password') && !isset($fields['servicepassword'])) {
                $fields['servicepassword'] = [$name, $value];
            } elseif (str_contains($lower, 'username') && !isset($fields['serviceusername'])) {
                $fields['serviceusername'] = [$name, $value];
            }
        }
        $why = 'the local API is not available';
        if ($fields && function_exists('localAPI')) {
            $values = ['serviceid' => (int) $serviceId];
            foreach ($fields as $field => [, $value]) {
                $values[$field] = $value;
            }
            try {
                $answer = localAPI('UpdateClientProduct', $values);
            } catch (\Throwable $e) {
                $answer = ['result' => 'error', 'message' => $e->getMessage()];
            }
            $log->call('UpdateClientProduct', $values, $answer);
            if (is_array($answer) && ($answer['result'] ?? '') === 'success') {
                foreach ($fields as [$name]) {
                    unset($secrets[$name]);
                }
                WhmcsData::activity(sprintf('provisioner: saved the one-time %s from the provider into service #%s',
                    implode(' and ', array_column($fields, 0)), $serviceId));
            } else {
                $why = 'UpdateClientProduct: ' . (is_array($answer) ? (string) ($answer['message'] ?? 'no answer') : 'no answer');
            }
        }
        if (!$secrets) {
            return null;
        }
        if (function_exists('encrypt') && Store::available()) {
            try {
                foreach ($secrets as $name => $value) {
                    Store::keepSecret($serviceId, (string) $name, (string) encrypt($value));
                }
                WhmcsData::activity(sprintf('provisioner: one-time %s from the provider for service #%s kept for the '
                    . 'admin\'s service page (%s)', implode(', ', array_keys($secrets)), $serviceId, $why));
                return null;
            } catch (\Throwable $e) {
                $why .= '; ' . $e->getMessage();
            }
        }
        return sprintf('The service was set up at the provider, but the one-time %s it generated could not be saved '
            . 'in WHMCS (%s). Generate a new one at the provider.', implode(', ', array_keys($secrets)),
            rtrim($why, '.'));
    }
}
