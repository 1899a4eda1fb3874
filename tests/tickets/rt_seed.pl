#!/usr/bin/perl
# Seed a fresh Request Tracker database for foureyes' tests (run by tests/tickets/harness.py
# with RT_SITE_CONFIG set): the `Accounts` custom field on the General queue, a least-privileged
# user `foureyes` (sees tickets and the field, nothing else) and auth tokens for it and for root
# (the tests open and close tickets as root). Prints `reader <token>` and `admin <token>`.
use strict;
use warnings;
use lib '/usr/share/request-tracker5/lib';
use RT;
RT::LoadConfig();
RT::Init();

sub check { my ($ok, $msg) = @_; die "rt_seed: $msg\n" unless $ok; return $ok }

my $queue = RT::Queue->new(RT->SystemUser);
check($queue->Load('General'), 'no General queue');

my $cf = RT::CustomField->new(RT->SystemUser);
check($cf->Create(Name => 'Accounts', Type => 'FreeformMultiple',
                  LookupType => 'RT::Queue-RT::Ticket'));
check($cf->AddToObject($queue));

my $reader = RT::User->new(RT->SystemUser);
check($reader->Create(Name => 'foureyes', Privileged => 1,
                      EmailAddress => 'foureyes@foureyes.test'));
for my $right (qw(SeeQueue ShowTicket)) {
    check($reader->PrincipalObj->GrantRight(Right => $right, Object => $queue));
}
check($reader->PrincipalObj->GrantRight(Right => 'SeeCustomField', Object => $cf));

my $root = RT::User->new(RT->SystemUser);
check($root->Load('root'), 'no root user');

for my $pair (['reader', $reader], ['admin', $root]) {
    my ($name, $user) = @$pair;
    my $token = RT::AuthToken->new(RT->SystemUser);
    my ($id, $msg, $string) = $token->Create(Owner => $user->id, Description => 'foureyes tests');
    die "rt_seed: $msg\n" unless $id;
    print "$name $string\n";
}
