/** The ownership rules: owner, groups, collaborators, public, wildcards, roles, ownerless resources. */
import { describe, expect, it } from 'vitest';
import { type AccessType, type Ownership, permits } from './ownership.js';
import type { Principal } from './principal.js';

const user = (sub: string, groups: string[] = [], roles = ['system.user']): Principal => ({ sub, roles, groups });
const NEEDS: AccessType[] = ['Read', 'Write', 'Admin'];
const allowed = (p: Principal, o: Ownership | undefined) => NEEDS.filter((need) => permits(p, o, need));

describe('permits', () => {
  const owned: Ownership = {
    owner: 'alice',
    acls: { groups: { 'team-r': 'Read', 'team-w': 'Write' }, collaborators: { dave: 'Admin', erin: 'Read' } },
  };

  it('gives the owner and admins everything, strangers nothing', () => {
    expect(allowed(user('alice'), owned)).toEqual(NEEDS);
    expect(allowed(user('root', [], ['system.admin']), owned)).toEqual(NEEDS);
    expect(allowed(user('root', [], ['system.admin']), undefined)).toEqual(NEEDS);
    expect(allowed(user('bob', ['team-b']), owned)).toEqual([]);
  });

  it('gives groups and collaborators their access type and the ones below it, the best of several', () => {
    expect(allowed(user('carol', ['team-r']), owned)).toEqual(['Read']);
    expect(allowed(user('carol', ['team-r', 'team-w']), owned)).toEqual(['Read', 'Write']);
    expect(allowed(user('dave'), owned)).toEqual(NEEDS);
    expect(allowed(user('erin', ['team-w']), owned)).toEqual(['Read', 'Write']);
  });

  it('caps system.view at Read, even as owner or collaborator with Write', () => {
    expect(allowed(user('alice', [], ['system.view']), owned)).toEqual(['Read']);
    expect(allowed(user('vic', ['team-w'], ['system.view']), owned)).toEqual(['Read']);
    expect(allowed(user('nobody', [], []), owned)).toEqual([]);
  });

  it('honours public access and the * wildcard for groups and collaborators', () => {
    expect(allowed(user('x'), { owner: 'a', acls: { public: { type: 'Read' } } })).toEqual(['Read']);
    expect(allowed(user('x'), { owner: 'a', acls: { collaborators: { '*': 'Write' } } })).toEqual(['Read', 'Write']);
    expect(allowed(user('x', ['g']), { owner: 'a', acls: { groups: { '*': 'Read' } } })).toEqual(['Read']);
  });

  it('leaves a resource without an ownership record to admins', () => {
    expect(allowed(user('alice'), undefined)).toEqual([]);
  });
});
