<?php
/**
 * The configurable options a product needs, made from the provisioner's own product
 * definition (GET /api/v1/products) instead of typed by hand: one WHMCS option group
 * "provisioner: <product>" linked to the WHMCS product, with one option per limit the
 * product reads from an option, named exactly as the provisioner expects:
 *   a range (min/max)  -> Quantity (type 4) with that minimum and maximum
 *   choices            -> Dropdown (type 1), one choice per value ("0"/"1" only: Yes/No, type 3)
 * Running it again updates ranges and adds what is missing; it never deletes an option or
 * a choice (services may use them). New choices are free (a tblpricing row of zeros per
 * currency): the admin sets the prices.
 *
 * Run from the product's Module Settings ("Create configurable options", saved; hooks.php,
 * AdminProductConfigFieldsSave).
 */

namespace WHMCS\Module\Server\Provisioner;

use WHMCS\Database\Capsule;

final class Options
{
    public const QUANTITY = 4;
    public const YES_NO = 3;
    public const DROPDOWN = 1;

    /** @return array{ok: bool, message: string, options?: list<string>} */
    public static function load(int $productId): array
    {
        $product = Capsule::table('tblproducts')->where('id', $productId)->first();
        if (!$product) {
            return ['ok' => false, 'message' => "WHMCS product #$productId does not exist."];
        }
        $product = (object) (array) $product;
        $billingId = trim((string) ($product->configoption2 ?? '')) ?: (string) $productId;
        $server = self::serverFor($product);
        if ($server === null) {
            return ['ok' => false, 'message' => 'No provisioner server to ask: add one under Servers (module '
                . 'Provisioner) and pick its group on the product\'s Module Settings.'];
        }
        $log = new ModuleLog();
        try {
            $connection = Connection::fromParams($server, $log);
            $definitions = Sync::all($connection, 'ConfigOptionLoader', '/api/v1/products');
        } catch (\Throwable $e) {
            return ['ok' => false, 'message' => 'Could not read the provisioner\'s products: '
                . Text::sentence($e->getMessage())];
        }
        $definition = null;
        foreach ($definitions as $candidate) {
            if (in_array($billingId, array_map('strval', (array) ($candidate['billing_product_ids'] ?? [])), true)) {
                $definition = $candidate;
                break;
            }
        }
        if ($definition === null) {
            return ['ok' => false, 'message' => sprintf('No product at the provisioner lists billing product id "%s" '
                . 'in billing_product_ids.', $billingId)];
        }
        $wanted = self::wanted(is_array($definition['limits'] ?? null) ? $definition['limits'] : []);
        if (!$wanted) {
            return ['ok' => true, 'message' => sprintf('Product %s takes no configurable options.', $definition['id']),
                'options' => []];
        }
        $groupId = self::group($productId, (string) $definition['id']);
        $names = [];
        foreach ($wanted as $name => $spec) {
            self::option($groupId, $name, $spec);
            $names[] = $name;
        }
        $message = sprintf('Configurable options for product %s (%s): %s.', $definition['id'],
            'group "provisioner: ' . $definition['id'] . '"', implode(', ', $names));
        WhmcsData::activity('provisioner: ' . $message);
        return ['ok' => true, 'message' => $message, 'options' => $names];
    }

    /** @return array<string, array{type: int, min?: int, max?: int, choices?: list<string>}> by option name */
    public static function wanted(array $limits): array
    {
        $out = [];
        foreach ($limits as $spec) {
            if (!is_array($spec) || !is_string($spec['option'] ?? null) || $spec['option'] === '') {
                continue;            // a fixed value: nothing for the customer to choose
            }
            $choices = is_array($spec['choices'] ?? null) ? array_map(static fn ($c) => is_bool($c)
                ? ($c ? '1' : '0') : (string) $c, $spec['choices']) : null;
            if ($choices !== null && $choices !== []) {
                $sorted = $choices;
                sort($sorted);
                $out[$spec['option']] = $sorted === ['0', '1'] ? ['type' => self::YES_NO]
                    : ['type' => self::DROPDOWN, 'choices' => $choices];
                continue;
            }
            $out[$spec['option']] = ['type' => self::QUANTITY, 'min' => (int) ($spec['min'] ?? 0),
                'max' => isset($spec['max']) ? (int) $spec['max'] : 0];
        }
        return $out;
    }

    private static function serverFor(object $product): ?array
    {
        $groupId = (int) ($product->servergroup ?? 0);
        $servers = WhmcsData::servers();
        if ($groupId > 0) {
            foreach (Capsule::table('tblservergroupsrel')->where('groupid', $groupId)->get() as $rel) {
                foreach ($servers as $server) {
                    if ((int) $server['serverid'] === (int) ((object) (array) $rel)->serverid) {
                        return $server;
                    }
                }
            }
        }
        return $servers[0] ?? null;
    }

    private static function group(int $productId, string $definitionId): int
    {
        $name = 'provisioner: ' . $definitionId;
        $group = Capsule::table('tblproductconfiggroups')->where('name', $name)->first();
        $groupId = $group ? (int) ((object) (array) $group)->id : (int) Capsule::table('tblproductconfiggroups')
            ->insertGetId(['name' => $name, 'description' => 'Made by the provisioner module from product '
                . $definitionId . '; names must stay as they are.']);
        if (!Capsule::table('tblproductconfiglinks')->where('gid', $groupId)->where('pid', $productId)->first()) {
            Capsule::table('tblproductconfiglinks')->insert(['gid' => $groupId, 'pid' => $productId]);
        }
        return $groupId;
    }

    private static function option(int $groupId, string $name, array $spec): void
    {
        $existing = null;
        foreach (Capsule::table('tblproductconfigoptions')->where('gid', $groupId)->get() as $row) {
            $row = (object) (array) $row;
            if (explode('|', (string) $row->optionname, 2)[0] === $name) {
                $existing = $row;
                break;
            }
        }
        $values = ['optiontype' => $spec['type'], 'qtyminimum' => $spec['min'] ?? 0, 'qtymaximum' => $spec['max'] ?? 0];
        if ($existing !== null) {
            Capsule::table('tblproductconfigoptions')->where('id', (int) $existing->id)->update($values);
            $optionId = (int) $existing->id;
        } else {
            $optionId = (int) Capsule::table('tblproductconfigoptions')->insertGetId(
                ['gid' => $groupId, 'optionname' => $name, 'order' => 0, 'hidden' => 0] + $values);
        }
        // A quantity or yes/no option has one choice row; a dropdown one per value.
        $subs = $spec['type'] === self::DROPDOWN ? $spec['choices'] : [$spec['type'] === self::YES_NO ? 'Yes' : $name];
        $have = [];
        foreach (Capsule::table('tblproductconfigoptionssub')->where('configid', $optionId)->get() as $row) {
            $have[] = explode('|', (string) ((object) (array) $row)->optionname, 2)[0];
        }
        foreach ($subs as $order => $sub) {
            if ($spec['type'] !== self::DROPDOWN && $have) {
                break;               // its one row exists
            }
            if (in_array((string) $sub, $have, true)) {
                continue;
            }
            $subId = (int) Capsule::table('tblproductconfigoptionssub')->insertGetId(
                ['configid' => $optionId, 'optionname' => (string) $sub, 'sortorder' => $order, 'hidden' => 0]);
            foreach (Capsule::table('tblcurrencies')->get() as $currency) {
                Capsule::table('tblpricing')->insert(['type' => 'configoptions',
                    'currency' => (int) ((object) (array) $currency)->id, 'relid' => $subId]);
            }
        }
    }
}
