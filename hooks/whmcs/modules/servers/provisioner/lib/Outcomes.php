<?php
/**
 * Brings WHMCS level with how a job ended at the provisioner, whether WHMCS hears it from a
 * callback (callback.php) or finds it in the cron catch-up (hooks.php, AfterCronJob).
 *
 * Each outcome is applied once: mod_provisioner_outcomes is keyed by job id, attempts and
 * state, so the callback, a redelivery of it and the cron cannot apply it twice, while a job
 * that a Retry queued again (and that so ends with more attempts) is heard anew.
 *
 *  - A create that succeeded after WHMCS was told it was still running: WHMCS's own
 *    ModuleCreate (local API) makes the service Active, clears its Module Queue entry and
 *    logs "Module Create Successful" (CreateAccount answers "success" without sending, see
 *    Commands::confirmCreate); one-time credentials the provider generated are saved; the
 *    product's welcome e-mail is sent (SendEmail) once.
 *  - Any other success: an activity log line (WHMCS already shows the state).
 *  - A failure WHMCS did not see (the command was answered "success" or "queued", or a job
 *    the provisioner ran by itself): a to-do for the admins with the provider's safe
 *    message, a module log entry and an activity log line. A failure WHMCS was shown (the
 *    command is "open", its Module Queue entry waits for Retry) is only logged.
 */

namespace WHMCS\Module\Server\Provisioner;

final class Outcomes
{
    /** the cron looks at a queued command once its callback is this late */
    public const CALLBACK_GRACE = 60;
    public const CATCH_UP_BATCH = 50;

    private const ACTIONS = [
        'service.create' => 'Create', 'service.suspend' => 'Suspend', 'service.unsuspend' => 'Unsuspend',
        'service.terminate' => 'Terminate', 'service.change_package' => 'Change package',
        'service.renew' => 'Renew', 'service.change_password' => 'Change password',
        'service.update' => 'Billing edit',
    ];

    /**
     * @param array{id: string, state: string, event_type?: ?string, webhook_id?: ?string,
     *              message?: ?string, attempts?: int} $job
     * @return string what was done, for the log and the callback's answer
     */
    public static function apply(array $job, string $serviceId, Connection $connection, string $via): string
    {
        $log = $connection->log();
        $jobId = (string) $job['id'];
        $state = (string) $job['state'];
        if (!in_array($state, ['succeeded', 'skipped', 'failed'], true)) {
            return 'not finished';
        }
        $webhookId = (string) ($job['webhook_id'] ?? '');
        $command = $webhookId !== '' ? Store::command($webhookId) : null;
        if ($command !== null && Store::awaitingAnswer($command)) {
            // The module call that sent it has not read its answer yet: that answer decides
            // what WHMCS is shown, so this outcome is taken later (the callback is redelivered).
            return 'deferred';
        }
        $attempts = (int) ($job['attempts'] ?? 0);
        if (!Store::claimOutcome($jobId, $attempts, $serviceId, $state, $via)) {
            return 'already applied';
        }
        $type = (string) ($job['event_type'] ?? '');
        if ($type === '' && $command !== null) {
            $type = 'service.' . $command->action;
        }
        $action = self::ACTIONS[$type] ?? 'A job';

        if ($state !== 'failed') {
            if ($command !== null) {
                Store::forget($webhookId);
            }
            if ($type === 'service.create') {
                return self::activate($serviceId, $jobId, $connection, $log);
            }
            WhmcsData::activity(sprintf('provisioner: %s of service #%s done at the provider (job %s, via %s)', $action,
                $serviceId, $jobId, $via));
            return 'logged';
        }

        $message = Text::sentence((string) ($job['message'] ?? '')) ?: 'The provider could not complete the request.';
        if ($command !== null && (string) $command->state === Store::OPEN) {
            WhmcsData::activity(sprintf('provisioner: %s of service #%s failed at the provider (job %s): %s The failure '
                . 'was shown when the command ran; Retry in the Module Queue runs it again.', $action, $serviceId,
                $jobId, $message));
            return 'logged';
        }
        if ($command !== null) {
            Store::forget($webhookId);
        }
        $next = [
            'service.create' => 'The service stays Pending. Once the cause is fixed, run Create (Module Commands) on '
                . 'the service again.',
            'service.change_password' => 'WHMCS shows the new password; the provisioner keeps it and applies it at '
                . 'its next converge. Check the provider, or send the password again (Change Password).',
        ][$type] ?? 'WHMCS already shows the change; the provisioner keeps it as wanted and converges again at its '
            . 'next pass. Check the provider, then run the module command again if needed.';
        $title = sprintf('Provisioner: %s failed for service #%s', $action, $serviceId);
        $description = sprintf("%s\n\n%s\n\nJob %s at the provisioner failed after %d attempt%s (reported via %s).",
            $message, $next, $jobId, $attempts, $attempts === 1 ? '' : 's', $via);
        WhmcsData::addTodo($title, $description);
        $log->call('JobFailed', ['service' => $serviceId, 'job' => $jobId, 'via' => $via, 'type' => $type], $message);
        WhmcsData::activity(sprintf('provisioner: %s of service #%s failed at the provider (job %s): %s A to-do was opened.',
            $action, $serviceId, $jobId, $message));
        return 'to-do opened';
    }

    /** A late success of a create: Active through ModuleCreate, credentials saved, welcome e-mail once. */
    private static function activate(string $serviceId, string $jobId, Connection $connection, ModuleLog $log): string
    {
        $hosting = WhmcsData::service($serviceId);
        $status = $hosting !== null ? (string) ($hosting->domainstatus ?? '') : '';
        if ($status !== 'Pending') {
            WhmcsData::activity(sprintf('provisioner: the create of service #%s finished at the provider (job %s); WHMCS '
                . 'shows it as %s already, nothing changed', $serviceId, $jobId, $status !== '' ? $status : 'unknown'));
            return 'logged';
        }
        Commands::confirmCreate($serviceId, $jobId);
        $answer = WhmcsData::localApi('ModuleCreate', ['serviceid' => (int) $serviceId], $log);
        if (($answer['result'] ?? '') !== 'success') {
            $why = (string) ($answer['message'] ?? 'no answer');
            WhmcsData::addTodo(sprintf('Provisioner: service #%s is set up but still Pending', $serviceId),
                sprintf("The provider finished setting up service #%s (job %s), but WHMCS's ModuleCreate answered: %s\n\n"
                    . 'Run Create (Module Commands) on the service: it is answered at once, as the job succeeded.',
                    $serviceId, $jobId, $why));
            return 'to-do opened';
        }
        $detail = $connection->api('JobOutcome', 'GET', '/api/v1/jobs/' . rawurlencode($jobId));
        $secrets = is_array($detail->json) && is_array($detail->json['secrets'] ?? null) ? $detail->json['secrets'] : [];
        if ($secrets) {
            $problem = Secrets::deliver($serviceId, $secrets, $log);
            if ($problem !== null) {
                WhmcsData::addTodo(sprintf('Provisioner: credentials of service #%s not saved', $serviceId), $problem);
            }
        }
        $template = WhmcsData::welcomeTemplate((int) ($hosting->packageid ?? 0));
        if ($template === null) {
            WhmcsData::activity(sprintf('provisioner: service #%s is set up at the provider (job %s) and Active; its product '
                . 'has no welcome e-mail', $serviceId, $jobId));
            return 'activated';
        }
        $mail = WhmcsData::localApi('SendEmail', ['messagename' => $template, 'id' => (int) $serviceId], $log);
        if (($mail['result'] ?? '') !== 'success') {
            WhmcsData::addTodo(sprintf('Provisioner: welcome e-mail of service #%s not sent', $serviceId),
                sprintf('Service #%s is Active, but sending "%s" failed: %s. Send it from the service (Send Message).',
                    $serviceId, $template, (string) ($mail['message'] ?? 'no answer')));
            return 'activated';
        }
        WhmcsData::activity(sprintf('provisioner: service #%s is set up at the provider (job %s), Active, welcome e-mail '
            . 'sent', $serviceId, $jobId));
        return 'activated';
    }

    /** A Retry saw the outcome first (WHMCS's own path applies it): only record that it is applied. */
    public static function claimQuietly(string $jobId, int $attempts, string $serviceId, string $state,
                                        string $via, ModuleLog $log): void
    {
        try {
            Store::claimOutcome($jobId, $attempts, $serviceId, $state, $via);
        } catch (\Throwable $e) {
            $log->call('OutcomeStore', 'claim ' . $jobId, get_class($e) . ': ' . $e->getMessage());
        }
    }

    /**
     * The cron catch-up: commands still waiting on their job whose callback is late are
     * asked for at the provisioner (GET /api/v1/jobs/{id}); open billing edits are sent
     * again. Nothing depends on one callback delivery.
     *
     * @return array{checked: int, applied: int, resent: int}
     */
    public static function catchUp(?int $now = null): array
    {
        $now = $now ?? time();
        $counts = ['checked' => 0, 'applied' => 0, 'resent' => 0];
        foreach (Store::queued(self::CATCH_UP_BATCH) as $command) {
            $updated = strtotime((string) ($command->updated_at ?? '') . ' UTC');
            if ($updated !== false && $now - $updated < self::CALLBACK_GRACE) {
                continue;
            }
            $log = new ModuleLog();
            $server = WhmcsData::server((int) $command->server_id);
            if ($server === null) {
                continue;
            }
            try {
                $connection = Connection::fromParams($server, $log);
            } catch (ConfigError $e) {
                $log->call('CronCatchUp', 'server ' . $command->server_id, $e->getMessage());
                continue;
            }
            $counts['checked']++;
            $answer = $connection->api('CronCatchUp', 'GET', '/api/v1/jobs/' . rawurlencode((string) $command->job_id));
            if ($answer->status === 404) {
                Store::forget((string) $command->webhook_id);
                WhmcsData::activity(sprintf('provisioner: job %s of service #%s is unknown to the provisioner; no longer '
                    . 'waiting for it', $command->job_id, $command->service_id));
                continue;
            }
            if ($answer->status !== 200 || !is_array($answer->json)) {
                continue;            // the provisioner is unreachable: the next cron run asks again
            }
            $job = $answer->json;
            $error = is_array($job['error'] ?? null) ? (string) ($job['error']['message'] ?? '') : '';
            $done = self::apply(['id' => (string) $command->job_id, 'state' => (string) ($job['state'] ?? ''),
                'event_type' => 'service.' . $command->action, 'webhook_id' => (string) $command->webhook_id,
                'message' => $error, 'attempts' => (int) ($job['attempts'] ?? 0)],
                (string) $command->service_id, $connection, 'cron');
            if ($done !== 'not finished' && $done !== 'deferred') {
                $counts['applied']++;
            }
            if ($done === 'already applied') {
                Store::forget((string) $command->webhook_id);
            }
        }
        foreach (Store::open('update', self::CATCH_UP_BATCH) as $command) {
            $params = WhmcsData::serviceParams((string) $command->service_id);
            if ($params === null) {
                Store::forget((string) $command->webhook_id);
                continue;
            }
            $result = Commands::update($params, new ModuleLog());
            $counts['resent']++;
            WhmcsData::activity(sprintf('provisioner: billing edit of service #%s sent again: %s', $command->service_id,
                $result['message']));
        }
        return $counts;
    }
}
