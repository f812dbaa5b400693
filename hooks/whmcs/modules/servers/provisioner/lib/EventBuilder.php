<?php
/**
 * WHMCS $params -> the provisioner's lifecycle event (hooks/README.md, contract section 2).
 *
 * next_due_date and billing_cycle are not in $params in every WHMCS version: they are
 * read from $params['model'] (the WHMCS\Service\Service model, WHMCS 7.0+) when it is
 * there, else from $params['nextduedate'] / $params['billingcycle'], else from the
 * service's row in tblhosting. A free or one-time service has no due date ("0000-00-00"):
 * none is sent.
 */

namespace WHMCS\Module\Server\Provisioner;

use WHMCS\Database\Capsule;

final class EventBuilder
{
    /** module function => event type */
    public const TYPES = [
        'CreateAccount' => 'service.create',
        'SuspendAccount' => 'service.suspend',
        'UnsuspendAccount' => 'service.unsuspend',
        'TerminateAccount' => 'service.terminate',
        'ChangePackage' => 'service.change_package',
        'Renew' => 'service.renew',
        'ChangePassword' => 'service.change_password',
        'Update' => 'service.update',
    ];

    /** WHMCS client language -> the short code the provisioner keeps (at most 8 characters). */
    private const LANGUAGES = [
        'arabic' => 'ar', 'azerbaijani' => 'az', 'catalan' => 'ca', 'chinese' => 'zh', 'croatian' => 'hr',
        'czech' => 'cs', 'danish' => 'da', 'dutch' => 'nl', 'english' => 'en', 'estonian' => 'et',
        'farsi' => 'fa', 'french' => 'fr', 'german' => 'de', 'hebrew' => 'he', 'hungarian' => 'hu',
        'italian' => 'it', 'macedonian' => 'mk', 'norwegian' => 'no', 'portuguese-br' => 'pt-BR',
        'portuguese-pt' => 'pt-PT', 'romanian' => 'ro', 'russian' => 'ru', 'spanish' => 'es',
        'swedish' => 'sv', 'turkish' => 'tr', 'ukranian' => 'uk', 'ukrainian' => 'uk',
    ];

    /**
     * The event without "occurred_at" (the caller stamps it, and keeps it for retries).
     *
     * @throws ConfigError when something the event needs is missing
     */
    public static function build(string $function, array $params): array
    {
        $type = self::TYPES[$function] ?? null;
        if ($type === null) {
            throw new \InvalidArgumentException("no event for $function");
        }
        $serviceId = trim((string) ($params['serviceid'] ?? $params['accountid'] ?? ''));
        if ($serviceId === '') {
            throw new ConfigError('WHMCS passed no service id to the module.');
        }
        $productId = trim((string) ($params['configoption2'] ?? ''));
        if ($productId === '') {
            $productId = trim((string) ($params['pid'] ?? $params['packageid'] ?? ''));
        }
        $service = ['id' => $serviceId, 'product_id' => $productId];

        $domain = self::asciiDomain(trim((string) ($params['domain'] ?? '')));
        if ($domain !== '') {
            $service['domain'] = self::cut($domain, 253);
        } elseif ($type === 'service.create') {
            throw new ConfigError('This service has no domain: enter the customer\'s domain in the service\'s '
                . 'Domain field, save, and run Create again.');
        }
        $username = trim((string) ($params['username'] ?? ''));
        if ($username !== '') {
            $service['username'] = self::cut($username, 255);
        }
        $password = (string) ($params['password'] ?? '');
        if ($type === 'service.change_password' && $password === '') {
            throw new ConfigError('There is no new password to send: enter one in the service\'s Password field.');
        }
        if ($password !== '' && ($type === 'service.create' || $type === 'service.change_password')) {
            $service['password'] = $password;
        }
        if ($type === 'service.create' || $type === 'service.change_package') {
            $service['config_options'] = self::options($params['configoptions'] ?? []);
            $service['custom_fields'] = self::customFields($params['customfields'] ?? []);
        }
        [$nextDue, $cycle] = self::term($params, $serviceId);
        if ($cycle !== null) {
            $service['billing_cycle'] = $cycle;
        }
        if ($nextDue !== null) {
            $service['next_due_date'] = $nextDue;
        }
        if ($type === 'service.suspend') {
            $reason = trim((string) ($params['suspendreason'] ?? ''));
            if ($reason !== '') {
                $service['suspend_reason'] = self::cut($reason, 255);
            }
        }
        if ($type === 'service.update') {
            $service['auto_suspend'] = self::autoSuspend($params, $serviceId);
        }
        $event = ['type' => $type, 'service' => $service];
        $client = self::client($params);
        if ($client !== null) {
            $event['client'] = $client;
        } elseif ($type === 'service.create') {
            throw new ConfigError('WHMCS passed no client details for this service.');
        }
        return $event;
    }

    /** The event with its occurred_at, in the contract's key order. */
    public static function stamped(array $event, string $occurredAt): array
    {
        return ['type' => $event['type'], 'occurred_at' => $occurredAt] + $event;
    }

    public static function now(): string
    {
        // Microseconds: two commands in the same second still keep their order.
        return (new \DateTimeImmutable('now', new \DateTimeZone('UTC')))->format('Y-m-d\TH:i:s.u\Z');
    }

    /**
     * The domain as the provisioner takes it: lower case, an internationalised name (IDN)
     * in punycode ("bücher.example" -> "xn--bcher-kva.example"), via PHP's intl extension.
     *
     * @throws ConfigError when the name is not ASCII and cannot be converted
     */
    public static function asciiDomain(string $domain): string
    {
        if ($domain === '' || !preg_match('/[^\x00-\x7F]/', $domain)) {
            return strtolower($domain);
        }
        if (!function_exists('idn_to_ascii')) {
            throw new ConfigError(sprintf('The domain "%s" is an internationalised name: sending it needs PHP\'s intl '
                . 'extension (Debian: php-intl) on this WHMCS server, to write it as punycode (xn--...). Install '
                . 'it, or enter the domain in punycode.', $domain));
        }
        $ascii = idn_to_ascii($domain, IDNA_NONTRANSITIONAL_TO_ASCII, INTL_IDNA_VARIANT_UTS46, $info);
        if (!is_string($ascii) || $ascii === '') {
            throw new ConfigError(sprintf('The domain "%s" is not a valid internationalised domain name.', $domain));
        }
        return strtolower($ascii);
    }

    /** WHMCS's "Override Auto-Suspend" and "Suspend Until" as the provisioner's auto_suspend. */
    private static function autoSuspend(array $params, string $serviceId): array
    {
        $model = $params['model'] ?? null;
        $override = self::modelValue($model, ['overideautosuspend']) ?? ($params['overideautosuspend'] ?? null);
        $until = self::modelValue($model, ['overidesuspenduntil']) ?? ($params['overidesuspenduntil'] ?? null);
        if ($override === null && class_exists(Capsule::class)) {
            try {
                $row = Capsule::table('tblhosting')->where('id', (int) $serviceId)->first();
                if ($row) {
                    $override = $row->overideautosuspend ?? null;
                    $until = $until ?? ($row->overidesuspenduntil ?? null);
                }
            } catch (\Throwable $e) {
            }
        }
        $overridden = $override === true || in_array(strtolower(trim((string) $override)), ['1', 'on', 'true', 'yes'],
                true);
        return ['enabled' => !$overridden, 'until' => $overridden ? self::date($until) : null];
    }

    /** Configurable options by name; whole numbers as numbers. */
    private static function options($options): object
    {
        $out = [];
        if (is_array($options)) {
            foreach ($options as $name => $value) {
                if (is_string($value)) {
                    $value = trim($value);
                    if (preg_match('/^-?\d{1,15}$/', $value)) {
                        $value = (int) $value;
                    }
                } elseif (is_bool($value)) {
                    $value = $value ? 1 : 0;        // a yes/no option
                } elseif (!is_int($value) && !is_float($value) && $value !== null) {
                    continue;
                }
                $out[(string) $name] = $value;
            }
        }
        return (object) $out;
    }

    private static function customFields($fields): object
    {
        $out = [];
        if (is_array($fields)) {
            foreach ($fields as $name => $value) {
                if (is_scalar($value) || $value === null) {
                    $out[(string) $name] = $value === null ? '' : (string) $value;
                }
            }
        }
        return (object) $out;
    }

    /** @return array{0: ?string, 1: ?string} next due date (Y-m-d) and billing cycle */
    private static function term(array $params, string $serviceId): array
    {
        $model = $params['model'] ?? null;
        $due = self::modelValue($model, ['nextduedate', 'nextDueDate']) ?? ($params['nextduedate'] ?? null);
        $cycle = self::modelValue($model, ['billingcycle', 'billingCycle']) ?? ($params['billingcycle'] ?? null);
        if (($due === null || $cycle === null) && class_exists(Capsule::class)) {
            try {
                $row = Capsule::table('tblhosting')->where('id', (int) $serviceId)->first();
                if ($row) {
                    $due = $due ?? ($row->nextduedate ?? null);
                    $cycle = $cycle ?? ($row->billingcycle ?? null);
                }
            } catch (\Throwable $e) {
                // Without them the event is still valid; the provisioner keeps what it had.
            }
        }
        return [self::date($due), self::cycle($cycle)];
    }

    private static function modelValue($model, array $names)
    {
        if (!is_object($model)) {
            return null;
        }
        foreach ($names as $name) {
            try {
                $value = $model->{$name} ?? null;
            } catch (\Throwable $e) {
                $value = null;
            }
            if ($value !== null && $value !== '') {
                return $value;
            }
        }
        return null;
    }

    private static function date($value): ?string
    {
        if ($value instanceof \DateTimeInterface) {
            $value = $value->format('Y-m-d');
        } elseif (is_object($value) && method_exists($value, 'format')) {
            $value = $value->format('Y-m-d');        // Carbon
        }
        $value = substr(trim((string) $value), 0, 10);
        if (!preg_match('/^(\d{4})-(\d{2})-(\d{2})$/', $value, $m) || !checkdate((int) $m[2], (int) $m[3], (int) $m[1])) {
            return null;                              // "0000-00-00": free or one-time
        }
        return $value;
    }

    private static function cycle($value): ?string
    {
        $value = strtolower(trim((string) $value));
        return $value === '' ? null : self::cut($value, 32);
    }

    private static function client(array $params): ?array
    {
        $details = $params['clientsdetails'] ?? null;
        if (!is_array($details)) {
            return null;
        }
        $id = trim((string) ($params['userid'] ?? $details['userid'] ?? $details['id'] ?? ''));
        if ($id === '') {
            return null;
        }
        $text = static fn (string $key) => trim((string) ($details[$key] ?? ''));
        $address = $text('address1');
        if ($text('address2') !== '') {
            $address .= ($address !== '' ? ', ' : '') . $text('address2');
        }
        $country = strtoupper($text('countrycode') ?: $text('country'));
        $phone = $text('phonenumberformatted');
        if ($phone === '' && $text('phonenumber') !== '') {
            $cc = preg_replace('/\D/', '', $text('phonecc'));
            $phone = ($cc !== '' ? '+' . $cc . '.' : '') . preg_replace('/[^\d]/', '', $text('phonenumber'));
        }
        $client = [
            'id' => self::cut($id, 64),
            'email' => self::cut($text('email'), 255),
            'first_name' => self::cut($text('firstname'), 255),
            'last_name' => self::cut($text('lastname'), 255),
            'company' => self::cut($text('companyname'), 255),
            'country' => preg_match('/^[A-Z]{2}$/', $country) ? $country : '',
            'address' => self::cut($address, 255),
            'city' => self::cut($text('city'), 128),
            'state' => self::cut($text('state') ?: $text('fullstate'), 128),
            'postcode' => self::cut($text('postcode'), 32),
            'phone' => self::cut($phone, 32),
        ];
        $language = self::LANGUAGES[strtolower($text('language'))] ?? '';
        if ($language !== '') {
            $client['language'] = $language;
        }
        return $client;
    }

    /** At most $max characters (UTF-8 aware without mbstring). */
    private static function cut(string $value, int $max): string
    {
        if (strlen($value) <= $max) {
            return $value;
        }
        return preg_match('/^.{0,' . $max . '}/us', $value, $m) ? $m[0] : substr($value, 0, $max);
    }
}
