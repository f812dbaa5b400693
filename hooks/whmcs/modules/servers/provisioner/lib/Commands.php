<?php
/**
 * The lifecycle commands: CreateAccount, SuspendAccount, UnsuspendAccount, TerminateAccount,
 * ChangePackage, ChangePassword and Renew, each one signed event.
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
 *  - Before sending, the module stores per service {action, fingerprint, webhook-id,
 *    occurred_at} in mod_provisioner_deliveries. The webhook-id is
 *    "msg_whmcs_<serviceid>_<action>_<16 random hex digits>": readable in both logs, and new
 *    for every new command.
 *  - A later call whose action and fingerprint match the stored row is a retry of that
 *    command: it re-sends the stored webhook-id and occurred_at, so the body is
 *    byte-for-byte the same. The provisioner answers with the original job, queueing it
 *    again if it had failed.
 *  - Anything else (another action, other values, e.g. a different suspend reason or new
 *    configurable options) is a new command and gets a new webhook-id, replacing the row.
 *  - The row is removed when the job succeeded (or was skipped), and when the provisioner
 *    refused the request with a 4xx (it stored nothing under that id). It stays while the
 *    job is queued, running, retrying or failed, and after network errors and 5xx answers.
 *  - Within one call, network errors and 5xx answers are sent again twice (after 1 s and 2 s)
 *    with the same webhook-id and body; only the signature's timestamp is new.
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
}

final class Commands
{
    public const DEFAULT_WAIT = 25;
    public const MAX_WAIT = 30;

    public static function run(string $function, array $params): string
    {
        $log = new ModuleLog([(string) ($params['password'] ?? '')]);
        try {
            $connection = Connection::fromParams($params, $log);
            $event = EventBuilder::build($function, $params);
        } catch (ConfigError $e) {
            $log->call($function, 'not sent', $e->getMessage());
            return $e->getMessage();
        }
        $serviceId = $event['service']['id'];
        $action = substr($event['type'], strlen('service.'));
        $fingerprint = hash_hmac('sha256', Json::encode($event), $connection->signingKey());
        [$webhookId, $occurredAt] = self::delivery($serviceId, $action, $fingerprint, $log);
        $body = Json::encode(EventBuilder::stamped($event, $occurredAt));
        $result = $connection->sendEvent($function, $body, $webhookId, self::wait($params));
        return self::outcome($function, $params, $connection, $result, $serviceId, $webhookId);
    }

    /** The configured "Wait seconds" (configoption1): 0..30, default 25. */
    public static function wait(array $params): int
    {
        $value = trim((string) ($params['configoption1'] ?? ''));
        if ($value === '' || !preg_match('/^\d+$/', $value)) {
            return self::DEFAULT_WAIT;
        }
        return max(0, min(self::MAX_WAIT, (int) $value));
    }

    /** @return array{0: string, 1: string} the webhook-id and occurred_at to send */
    private static function delivery(string $serviceId, string $action, string $fingerprint, ModuleLog $log): array
    {
        $newId = 'msg_whmcs_' . preg_replace('/[^A-Za-z0-9]/', '', $serviceId) . '_' . $action . '_'
            . bin2hex(random_bytes(8));
        $now = EventBuilder::now();
        if (!Store::available()) {
            return [$newId, $now];
        }
        try {
            $pending = Store::pending($serviceId);
            if ($pending !== null && (string) $pending->action === $action
                && hash_equals((string) $pending->fingerprint, $fingerprint)) {
                return [(string) $pending->webhook_id, (string) $pending->occurred_at];
            }
            Store::remember($serviceId, $action, $fingerprint, $newId, $now);
        } catch (\Throwable $e) {
            // Without its table the module still works; a retry is then a new event
            // (idempotent by state at the provisioner), not the same job again.
            $log->call('DeliveryStore', 'remember ' . $action . ' for service ' . $serviceId,
                get_class($e) . ': ' . $e->getMessage());
        }
        return [$newId, $now];
    }

    private static function forget(string $serviceId, string $webhookId, ModuleLog $log): void
    {
        if (!Store::available()) {
            return;
        }
        try {
            Store::forget($serviceId, $webhookId);
        } catch (\Throwable $e) {
            $log->call('DeliveryStore', 'forget ' . $webhookId, get_class($e) . ': ' . $e->getMessage());
        }
    }

    private static function outcome(string $function, array $params, Connection $connection, HttpResult $result,
                                    string $serviceId, string $webhookId): string
    {
        $log = $connection->log();
        $again = 'use Retry in the Module Queue (Utilities > Module Queue), or run the command again, to send it again';
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
                self::forget($serviceId, $webhookId, $log);
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
                return ($error !== '' ? $error . ' ' : 'The provider could not complete the request. ')
                    . sprintf('(Job %s at the provisioner failed after %d attempt%s; once the cause is fixed, use '
                        . 'Retry in the Module Queue, or run the command again, to run the same job again.)',
                        $jobId, $attempts, $attempts === 1 ? '' : 's');
            }
            return sprintf('The request is queued at the provider (job %s); use Retry in the Module Queue to see '
                . 'the outcome.', $jobId) . ($error !== '' ? ' Last attempt: ' . $error : '');
        }
        if ($result->status < 400) {
            return sprintf('Unexpected answer from the provisioner (HTTP %d); the request is kept (webhook-id %s): %s.',
                $result->status, $webhookId, $again);
        }

        // 4xx: the provisioner stored nothing under this webhook-id; the next try is a new request.
        self::forget($serviceId, $webhookId, $log);
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
            'invalid_signature' => 'Check that the server\'s Password is one of the provisioner\'s webhook secrets '
                . '(PROVISIONER_WEBHOOK_SECRETS).',
            'stale_timestamp' => 'Check the clock of this WHMCS server (NTP): it must be within 5 minutes of the '
                . 'provisioner\'s.',
            'service_not_found' => 'Run Create for this service first.',
            'service_terminated' => 'Run Create to set it up again.',
            'unknown_product' => sprintf('Add %s to billing_product_ids of a product config at the provisioner, or set '
                . '"Provisioner product id" in this product\'s Module Settings.',
                json_encode((string) (trim((string) ($params['configoption2'] ?? '')) ?: ($params['pid'] ?? '')))),
            'idempotency_key_reused' => 'Run the command again to send it as a new request.',
        ];
        return isset($hints[$code]) ? $message . ' ' . $hints[$code] : $message;
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
                self::activity(sprintf('provisioner: saved the one-time %s from the provider into service #%s',
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
                self::activity(sprintf('provisioner: one-time %s from the provider for service #%s kept for the '
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

    private static function activity(string $message): void
    {
        if (function_exists('logActivity')) {
            try {
                logActivity($message);
            } catch (\Throwable $e) {
            }
        }
    }
}
