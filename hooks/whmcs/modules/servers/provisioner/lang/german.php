<?php
/** provisioner module: Deutsch. */

$_LANG['provisioner_heading'] = 'Ihre Postfächer';
$_LANG['provisioner_in_use'] = 'Belegt';
$_LANG['provisioner_included'] = 'Enthalten';
$_LANG['provisioner_unlimited'] = 'unbegrenzt';
$_LANG['provisioner_space_per_mailbox'] = 'Speicher je Postfach';
$_LANG['provisioner_storage_used'] = 'Belegter Speicher';
$_LANG['provisioner_gb'] = '%s GB';
$_LANG['provisioner_mb'] = '%s MB';
$_LANG['provisioner_manage'] = 'Postfächer verwalten';
$_LANG['provisioner_suspended'] = 'Solange der Dienst gesperrt ist, können die Postfächer nicht verwaltet werden.';
$_LANG['provisioner_pending'] = 'Ihre Postfächer werden eingerichtet. Sobald sie bereit sind, erscheinen sie hier.';
$_LANG['provisioner_unavailable'] = 'Die Angaben zu Ihren Postfächern können gerade nicht angezeigt werden. Bitte versuchen Sie es in einigen Minuten erneut.';
$_LANG['provisioner_sso_unavailable'] = 'Die Postfachverwaltung kann gerade nicht geöffnet werden. Bitte versuchen Sie es in einigen Minuten erneut oder wenden Sie sich an den Support.';
$_LANG['provisioner_sso_not_ready'] = 'Ihre Postfächer werden noch eingerichtet; die Verwaltung öffnet sich, sobald sie bereit sind.';
$_LANG['provisioner_label_mailboxes'] = 'Postfächer';
$_LANG['provisioner_label_enhanced_mailboxes'] = 'Erweiterte Postfächer';
$_LANG['provisioner_label_light_mailboxes'] = 'Light-Postfächer';
$_LANG['provisioner_label_standard_mailboxes'] = 'Standard-Postfächer';
$_LANG['provisioner_label_premium_mailboxes'] = 'Premium-Postfächer';
$_LANG['provisioner_label_aliases'] = 'Aliasse';
$_LANG['provisioner_label_distribution_lists'] = 'Verteilerlisten';
$_LANG['provisioner_label_mailing_lists'] = 'Mailinglisten';
$_LANG['provisioner_label_relay_messages'] = 'Nachrichten';
$_LANG['provisioner_label_relay_max_domains'] = 'Absenderdomains';
$_LANG['provisioner_downgrade_refused'] = 'Diese Änderung ist noch nicht möglich: %s';
$_LANG['provisioner_checkout_unavailable'] = 'Diese Änderung kann gerade nicht geprüft werden. Bitte versuchen Sie es in einigen Minuten erneut.';
